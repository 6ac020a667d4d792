"""RIHS01 type hashes (REP 2011) of message types in a rosbags typestore.

ROS 2 (Iron and later) identifies a message type's exact layout by a hash of its type
description: the SHA-256 of a canonical JSON text of the type's fields and of every
type it refers to, written `RIHS01_<hex>`. rosbag2 stores it per topic
(`type_description_hash` in metadata.yaml, `topic_type_hash` in mcap channel metadata)
and the middleware reports it for every publisher.

rosbags computes the same hash, except that it keeps a `.msg` `char` as IDL `char`
(type id 13), where rosidl turns it into `uint8` (3); so its hash of std_msgs/msg/Char,
rmw_dds_common/msg/Gid and anything containing them differs from ROS's. This module
hashes the typestore's definitions (which rosbags builds from `.msg` files) the way
rosidl_generator_type_description does.
"""
import json
from hashlib import sha256

from rosbags.typesys.store import Nodetype

# type_description_interfaces/msg/FieldType ids; `char` of a .msg is an uint8 (rosidl).
FIELD_TYPE_IDS = {
    'int8': 2, 'uint8': 3, 'int16': 4, 'uint16': 5, 'int32': 6, 'uint32': 7, 'int64': 8,
    'uint64': 9, 'float32': 10, 'float64': 11, 'float128': 12, 'char': 3, 'wchar': 14,
    'bool': 15, 'byte': 16, 'octet': 16, 'string': 17, 'wstring': 18,
}
NESTED_TYPE, BOUNDED_STRING, BOUNDED_WSTRING = 1, 21, 22
# added to the element's id: fixed-size array, bounded sequence, unbounded sequence
ARRAY, BOUNDED_SEQUENCE, UNBOUNDED_SEQUENCE = 48, 96, 144
EMPTY_STRUCT_FIELD = ('structure_needs_at_least_one_member', (Nodetype.BASE, ('uint8', 0)))


def _field_type(desc, referenced: list) -> dict:
    """A typestore field description -> the type part of a FieldDescription."""
    node, rest = desc
    offset = capacity = 0
    if node == Nodetype.ARRAY:
        (node, rest), capacity = rest
        offset = ARRAY
    elif node == Nodetype.SEQUENCE:
        (node, rest), capacity = rest
        offset = BOUNDED_SEQUENCE if capacity else UNBOUNDED_SEQUENCE
    string_capacity, nested = 0, ''
    if node == Nodetype.NAME:
        type_id, nested = NESTED_TYPE, rest
        referenced.append(rest)
    else:
        base, string_capacity = rest
        type_id = FIELD_TYPE_IDS[base]
        if string_capacity:   # string<=N / wstring<=N
            type_id = BOUNDED_STRING if base == 'string' else BOUNDED_WSTRING
    return {'type_id': offset + type_id, 'capacity': capacity,
            'string_capacity': string_capacity, 'nested_type_name': nested}


def _description(typestore, msgtype: str, referenced: list) -> dict:
    fields = typestore.fielddefs[msgtype][1] or [EMPTY_STRUCT_FIELD]
    return {'type_name': msgtype,
            'fields': [{'name': name, 'type': _field_type(desc, referenced)}
                       for name, desc in fields]}


def rihs01(typestore, msgtype: str) -> str:
    """`RIHS01_<sha256 hex>` of `msgtype` (which, and whose field types, must be in the
    typestore): what rclpy reports as a publisher's topic_type_hash."""
    pending, described = [msgtype], {}
    while pending:
        name = pending.pop()
        if name not in described:
            described[name] = _description(typestore, name, pending)
    hashed = {'type_description': described.pop(msgtype),
              'referenced_type_descriptions': [described[n] for n in sorted(described)]}
    # default separators (', ', ': '), keys in this order: REP 2011's canonical form
    return 'RIHS01_' + sha256(json.dumps(hashed).encode()).hexdigest()

"""Demo: image source (or simulated robot) -> VLA node (captions, answers, cmd_vel) + VQA
service, parameters from config/.

    ros2 launch vla_ros demo.launch.py
    ros2 launch vla_ros demo.launch.py image_topic:=/camera/image_raw use_image_source:=false
    ros2 service call /vqa vla_ros/srv/VQA "{question: 'what color is the shape?'}"
    ros2 topic echo /caption
    # the operator page: http://127.0.0.1:8080 (use_web:=false to leave it out)

With the simulated robot (it publishes the camera on image_topic, the map on /overview):

    ros2 launch vla_ros demo.launch.py use_sim:=true              # world:=3d: MuJoCo arena
    ros2 topic pub --once /instruction std_msgs/String "{data: 'go to the green circle'}"
    ros2 topic echo /action_status
    ros2 service call /reset std_srvs/srv/Trigger      # next arena; lists its shapes
    ros2 service call /stop std_srvs/srv/Trigger       # halt now
    ros2 run rqt_image_view rqt_image_view /overview

The VLA and VQA nodes are the managed (lifecycle) ones, configured and activated as they
start (their `autostart` parameter); `managed:=false` runs the plain nodes instead.

    ros2 lifecycle get /vla_node                       # active
    ros2 lifecycle set /vla_node deactivate            # zero velocity, then quiet

`vla-ros demo` runs the same node classes composed in one process (`--sim` for the robot).
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import Node


def enclave(node_name: str) -> list:
    """SROS2 enclave /vla_ros/<node>; ignored unless ROS_SECURITY_ENABLE=true (README)."""
    return ['--enclave', f'/vla_ros/{node_name}']


def generate_launch_description():
    config_dir = os.path.join(get_package_share_directory('vla_ros'), 'config')
    default_params = os.path.join(config_dir, 'vla_ros.yaml')
    # Big raw frames need a bigger Fast DDS shared-memory segment (see the XML); a profile
    # the user already chose wins. Affects only the processes started here.
    dds_profile = os.environ.get('FASTDDS_DEFAULT_PROFILES_FILE') or os.path.join(
        config_dir, 'fastdds_large_frames.xml')
    params = LaunchConfiguration('params_file')
    image_topic = LaunchConfiguration('image_topic')
    use_sim = LaunchConfiguration('use_sim')
    # The sim is the camera when it runs, so the image source then stays off.
    use_image_source = PythonExpression(["'", LaunchConfiguration('use_image_source'),
                                         "'.lower() == 'true' and '", use_sim,
                                         "'.lower() != 'true'"])
    # The nodes subscribe to `image` and `image/compressed`: remap both to the camera's
    # topics (image_transport names its compressed topic <image_topic>/compressed).
    camera_remaps = [('image', image_topic),
                     ('image/compressed', [image_topic, '/compressed'])]
    managed = LaunchConfiguration('managed')

    def model_node(executable: str) -> PythonExpression:
        """`managed_<executable>` unless managed:=false."""
        return PythonExpression(["'managed_", executable, "' if '", managed,
                                 "'.lower() == 'true' else '", executable, "'"])
    return LaunchDescription([
        SetEnvironmentVariable('FASTDDS_DEFAULT_PROFILES_FILE', dds_profile),
        DeclareLaunchArgument('params_file', default_value=default_params,
                              description='parameters of all nodes (node-name keyed YAML)'),
        DeclareLaunchArgument('image_topic', default_value='/image',
                              description='camera topic (sensor_msgs/Image)'),
        DeclareLaunchArgument('use_image_source', default_value='true',
                              description='start the built-in image source; set false '
                                          'when a real camera publishes image_topic'),
        DeclareLaunchArgument('use_web', default_value='true',
                              description='serve the operator page (web node, localhost:8080)'),
        DeclareLaunchArgument('managed', default_value='true',
                              description='lifecycle versions of vla_node and vqa_service, '
                                          'brought to active at start (false: plain nodes)'),
        DeclareLaunchArgument('use_sim', default_value='false',
                              description='start the simulated robot: its camera on '
                                          'image_topic, cmd_vel in, overview/odom out'),
        DeclareLaunchArgument('world', default_value='2d',
                              description="the simulated robot's arena (decides over the "
                                          'params file): 2d, the top-down camera the '
                                          'shipped model reads; 3d, MuJoCo with a '
                                          'perspective robot camera, camera_info and TF'),
        Node(package='vla_ros', executable='image_source', name='image_source',
             ros_arguments=enclave('image_source'), parameters=[params],
             remappings=camera_remaps, output='screen',
             condition=IfCondition(use_image_source)),
        Node(package='vla_ros', executable='sim', name='sim',
             ros_arguments=enclave('sim'),
             parameters=[params, {'world': LaunchConfiguration('world')}],
             remappings=[('image', image_topic)], output='screen',
             condition=IfCondition(use_sim)),
        Node(package='vla_ros', executable=model_node('vla_node'), name='vla_node',
             ros_arguments=enclave('vla_node'), parameters=[params],
             remappings=camera_remaps, output='screen'),
        Node(package='vla_ros', executable=model_node('vqa_service'), name='vqa_service',
             ros_arguments=enclave('vqa_service'), parameters=[params],
             remappings=camera_remaps, output='screen'),
        Node(package='vla_ros', executable='web', name='web',
             ros_arguments=enclave('web'), parameters=[params],
             remappings=camera_remaps, output='screen',
             condition=IfCondition(LaunchConfiguration('use_web'))),
    ])

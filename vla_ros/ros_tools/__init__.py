"""Programs that run the ROS 2 nodes of vla_ros.ros rather than being nodes: the ROS
benchmarks and load test (`vla-ros bench-ros`, `load-test`), bag playing, recording and
replay evaluation (`vla-ros bag play|record`, `eval-bag`) and the composed demos
(`vla-ros demo`, `demo --sim`). Each is started from the `vla-ros` command (or a test)."""

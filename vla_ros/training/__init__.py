"""Training pieces: the text batches (batches.py), the behaviour-cloning loss and its
demonstrations (actions.py) and the recipe that chains stages into the shipped
checkpoint (recipe.py). The loop itself is vla_ros/train.py."""

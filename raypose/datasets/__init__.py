"""What a dataset is: skeletons, cameras, HumanEva and Human3.6M constants, 2D keypoint layouts,
recognising a dataset from its files, and a run's saved layout."""

"""Other tools' formats: users' 2D files and tracks, BVH/CSV/JSON export, VideoPose3D checkpoints in and out."""

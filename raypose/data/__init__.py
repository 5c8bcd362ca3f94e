"""The frames: npz and Parquet files in, synthetic data, the frame table, splits, windows and the Ray Data ingest."""

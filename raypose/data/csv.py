"""The frame table as the seed project's CSV, for users whose tools predate the Parquet table."""
from raypose.data.table import fixed_list_numpy


def write_csv(table, path, append=False):
    """The 2022 layout: Subject, Action, Camera, x1, y1 ... xJ, yJ, X1, Y1, Z1 ... X15, Y15, Z15.

    2D in pixels, 3D in the camera's coordinates (metres, root-relative). `append`: add the rows
    to the file, without the header (a table written chunk by chunk).
    """
    import pandas as pd

    kp = fixed_list_numpy(table.column("keypoints_px"))
    cols = {"Subject": table.column("subject").to_numpy(zero_copy_only=False),
            "Action": table.column("action").to_numpy(zero_copy_only=False),
            "Camera": table.column("camera").to_numpy(zero_copy_only=False)}
    for i in range(kp.shape[1] // 2):
        cols[f"x{i + 1}"], cols[f"y{i + 1}"] = kp[:, 2 * i], kp[:, 2 * i + 1]
    if "pose_3d" in table.column_names:
        p = fixed_list_numpy(table.column("pose_3d"))
        for i in range(p.shape[1] // 3):
            for c, name in enumerate("XYZ"):
                cols[f"{name}{i + 1}"] = p[:, 3 * i + c]
    pd.DataFrame(cols).to_csv(path, index=False, float_format="%.6g", mode="a" if append else "w", header=not append)

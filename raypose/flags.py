"""The command line's flags and the docs' table of config keys, both generated from the config's
fields (raypose/config.py), so that each option is defined once."""
import json

from raypose import config as C


def add_flags(parser):
    """`--flag` for every option that has one, and `--set KEY=VALUE` for any key."""
    for section, f in C.fields():
        flag = f.metadata["flag"]
        if flag is None:
            continue
        key = f"{section}.{f.name}"
        if f.type is bool:
            parser.add_argument(f"--{flag}", dest=key, action="store_const", const=True, help=f.metadata["help"])
        else:
            parser.add_argument(f"--{flag}", dest=key, metavar=f.name.upper(),
                                help=f"{f.metadata['help']} [{key}]")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="any config key, e.g. train.lr=0.002 (see the table in docs/usage.md)")


def markdown_table():
    """The table of config keys in docs/usage.md, from the fields."""
    lines = ["| key | flag | default | meaning |", "|---|---|---|---|"]
    for section, f in C.fields():
        default = C._default(section, f.name)
        flag = f"`--{f.metadata['flag']}`" if f.metadata["flag"] else ""
        lines.append(f"| `{section}.{f.name}` | {flag} | `{json.dumps(default)}` | {f.metadata['help']} |")
    return "\n".join(lines)

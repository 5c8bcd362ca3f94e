"""The one exception type a user can cause; the CLI turns it into one line and exit status 2."""


class UserError(Exception):
    """Bad input from the user: a file, key or value that is not what raypose expects.

    The message is printed as one line, so it must name the file or key and what was expected.
    """

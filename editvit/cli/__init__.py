"""The `editvit` command line: a thin layer over the library API.

Each module in this package is one subcommand: it defines `register(subparsers)`, which adds its parser and sets
`func` to a callable taking the parsed arguments and returning an exit code. Modules are found automatically.
"""
import argparse
import errno
import importlib
import os
import pkgutil
import sys
from pathlib import Path
from typing import List, Optional


class UsageError(Exception):
    """Bad input from the user: printed as one clear message, without a traceback."""


DEBUG_ENV = 'EDITVIT_DEBUG'


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='editvit', description='EDIT (Encoder-Decoder Image Transformer) and attention-sink tools.')
    parser.add_argument('--debug', action='store_true',
                        help=f'show the full traceback of an error (also: {DEBUG_ENV}=1)')
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f'{__name__}.{info.name}')
        if hasattr(module, 'register'):
            module.register(subparsers)
    return parser


def os_error_message(e: OSError) -> str:
    """An OSError as a user reads it: what happened to which path, and what to do."""
    path = e.filename if e.filename is not None else ''
    where = f' {str(path)!r}' if path != '' else ''
    if e.errno == errno.ENOSPC:
        return f'no space left on the device of{where or " the output"}: free some space or choose another folder'
    if e.errno in (errno.EACCES, errno.EPERM):
        return f'permission denied:{where}; check the permissions or choose another path'
    if e.errno == errno.EROFS:
        return f'read-only file system:{where}; choose a writable folder'
    if e.errno == errno.ENOENT:
        return f'no such file or folder:{where}'
    if e.errno == errno.EISDIR:
        return f'{where.strip() or "the path"} is a folder where a file was expected'
    if e.errno == errno.EEXIST:
        return f'{where.strip() or "a path"} already exists (a file where a folder is needed?); choose another path'
    if e.errno == errno.ENOTDIR:
        return f'{where.strip() or "a path"}: a part of it is a file where a folder was expected'
    return f'{e.strerror or e}:{where}'


def check_not_empty(args: argparse.Namespace) -> None:
    """UsageError for an option given as an empty string (`--output ""` would otherwise mean the current folder)."""
    for key, value in vars(args).items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and not item.strip() and key != 'pattern':
                raise UsageError(f"--{key.replace('_', '-')} is empty; give a value or leave the option out")


def _debug_requested(words: List[str]) -> bool:
    return '--debug' in words or os.environ.get(DEBUG_ENV, '') not in ('', '0')


def main(argv: Optional[List[str]] = None) -> int:
    """`_main`, with a Ctrl-C while the libraries load (before a command runs) as one line and exit code 130."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        if _debug_requested(sys.argv[1:] if argv is None else argv):
            raise
        print(INTERRUPTED, file=sys.stderr)
        return 130


INTERRUPTED = 'editvit: interrupted'


def started_as_command() -> bool:
    """Whether this process is the `editvit` command: its console script or `python -m editvit` (as torchrun
    starts it)."""
    argv = list(getattr(sys, 'orig_argv', sys.argv))
    return Path(sys.argv[0]).name == 'editvit' or any(
        flag == '-m' and module == 'editvit' for flag, module in zip(argv, argv[1:]))


def exit_if_interrupted_at_start() -> None:
    """Called on a Ctrl-C while `import editvit` loads torch, before `main` can run: in the `editvit` command, end
    as `main` does (one line, exit code 130); in any other program (or with --debug) return, and the
    KeyboardInterrupt goes on."""
    if started_as_command() and not _debug_requested(sys.argv[1:]):
        print(INTERRUPTED, file=sys.stderr, flush=True)
        raise SystemExit(130)


def _main(argv: Optional[List[str]] = None) -> int:
    """Run one command. Bad input (an EditvitError, an OSError, a usage error) ends as one line on stderr and exit
    code 2; a training run stopped by SIGINT/SIGTERM as one line saying how to resume and 128 + the signal's number
    (130, 143); a second Ctrl-C as one line and 130. With --debug or EDITVIT_DEBUG=1 the traceback is shown
    instead."""
    import editvit  # noqa: F401  registers the models with timm
    from ..errors import EditvitError
    from ..train.stop import RunInterrupted

    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get(DEBUG_ENV, '') not in ('', '0')
    prefix = ' '.join(['editvit', args.command] + ([args.action] if getattr(args, 'action', None) else [])) + ':'
    try:
        check_not_empty(args)
        return int(args.func(args) or 0)
    except RunInterrupted as e:
        print(f'{prefix} {e}', file=sys.stderr)
        return 128 + e.signum
    except (UsageError, EditvitError) as e:
        if debug:
            raise
        print(f'{prefix} error: {e}', file=sys.stderr)
        return 2
    except OSError as e:
        if debug:
            raise
        print(f'{prefix} error: {os_error_message(e)}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if debug:
            raise
        print(f'{prefix} interrupted', file=sys.stderr)
        return 130

"""The command line of every hydra app (vla-record, vla-eval, vla-sim-report, vla-serve, vla-deploy,
vla-train, vla-demo): ``KEY=VALUE`` overrides composed over ``configs/<name>.yaml`` and the typed dataclass
behind it.

    @cli.app("vla-record", "record")
    def main(config: RecordConfig) -> None: ...     # main() reads sys.argv; main([...]) in tests

- An unknown key is an error naming the nearest valid one, ``+key=value`` included (hydra appends a ``+`` key,
  which ``OmegaConf.to_object`` then drops unseen).
- Any error is one line on stderr, ``<prog>: <problem>``, and exit status 1; ``VLA_DEBUG=1`` raises it
  with its traceback instead.
- ``--help`` lists every option with its composed default and the comments beside its dataclass field
  (``field_docs``), and the config groups this app's defaults list uses.
- ``renamed`` maps old option names to new ones: accepted with a one-line deprecation notice.

Hydra composes (``hydra.compose``) but does not run the app, so there is no output directory, working
directory change or .hydra/ folder; logging is configured from the config's ``hydra/job_logging`` (and
``hydra.verbose``) as ``@hydra.main`` did.
"""

from __future__ import annotations

import ast
import difflib
import functools
import inspect
import io
import os
import sys
import textwrap
import tokenize
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, is_dataclass

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.utils import configure_log
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import ConfigAttributeError, MissingMandatoryValue, OmegaConfBaseException

DEBUG_ENV = "VLA_DEBUG"  # set (to anything but 0): errors raise with their traceback
CONFIG_MODULE = "configs"
CONFIG_NAME_FLAG = "--config-name"
HELP_FLAGS = ("--help", "-h")
HYDRA_GROUPS = "hydra/"  # hydra's own groups (logging, launcher, ...): not the app's options


@dataclass(frozen=True)
class Command:
    config_name: str
    overrides: list[str]
    help: bool


def app(prog: str, config_name: str, renamed: dict[str, str] | None = None):
    """Decorate ``body(config)`` into the app's ``main(argv=None)``: compose, check, then run ``body``."""

    def decorate(body: Callable) -> Callable[..., None]:
        @functools.wraps(body)
        def main(argv: list[str] | None = None) -> None:
            try:
                command = parse_argv(sys.argv[1:] if argv is None else argv, config_name)
                overrides = rename(prog, command.overrides, renamed or {})
                cfg, hydra_cfg, groups = compose_checked(command.config_name, overrides)
                if command.help:
                    print(help_text(prog, sys.modules[body.__module__].__doc__, cfg, groups))
                    return
                configure_log(hydra_cfg.job_logging, hydra_cfg.verbose)
                config = OmegaConf.to_object(cfg)
                body(config)
            except Exception as error:
                if os.environ.get(DEBUG_ENV, "0") not in ("", "0"):
                    raise
                print(f"{prog}: {one_line(error)}", file=sys.stderr)
                raise SystemExit(1) from None

        return main

    return decorate


def parse_argv(argv: list[str], config_name: str) -> Command:
    overrides, show_help, args = [], False, iter(argv)
    for arg in args:
        if arg in HELP_FLAGS:
            show_help = True
        elif arg == CONFIG_NAME_FLAG:
            config_name = next(args, "")
        elif arg.startswith(CONFIG_NAME_FLAG + "="):
            config_name = arg.split("=", 1)[1]
        elif arg.startswith("-"):
            raise ValueError(
                f"unknown flag {arg!r}; flags: --help, {CONFIG_NAME_FLAG} NAME; options: KEY=VALUE"
            )
        else:
            overrides.append(arg)
    if not config_name:
        raise ValueError(f"{CONFIG_NAME_FLAG} needs a name (a yaml file of configs/)")
    return Command(config_name, overrides, show_help)


def rename(prog: str, overrides: list[str], renamed: dict[str, str]) -> list[str]:
    """Old option names (dotted keys) -> new ones, each use announced on stderr (they go next release)."""
    out = []
    for override in overrides:
        prefix = override[: len(override) - len(override.lstrip("+~"))]
        key, sep, value = override[len(prefix) :].partition("=")
        old = next((o for o in renamed if key == o or key.startswith(o + ".")), None)
        if old is not None:
            print(
                f"{prog}: {old}= is now {renamed[old]}= (the old name goes in the next release)",
                file=sys.stderr,
            )
            override = f"{prefix}{renamed[old]}{key[len(old) :]}{sep}{value}"
        out.append(override)
    return out


def compose_checked(config_name: str, overrides: list[str]) -> tuple[DictConfig, DictConfig, dict]:
    """The app's config (its ``hydra`` node apart), hydra's node, and the groups chosen -> their options.

    ``ValueError`` for a key that is not a field of its dataclass; hydra's errors for the rest.
    """
    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        try:
            cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
        except HydraException as error:  # "Could not override 'x'": no field x, the cause says where
            missing = next((c for c in _chain(error) if isinstance(c, ConfigAttributeError)), None)
            if missing is None or not missing.full_key:
                raise
            raise _unknown_key(missing.full_key, compose(config_name)) from error
        loader = GlobalHydra.instance().config_loader()
        with open_dict(cfg):
            hydra_cfg = cfg.pop("hydra")
        chosen = {k: v for k, v in hydra_cfg.runtime.choices.items() if not k.startswith(HYDRA_GROUPS)}
        groups = {key: (value, loader.get_group_options(key.split("@")[0])) for key, value in chosen.items()}
    unknown = next(_unknown_keys(cfg), None)  # a +key hydra appended
    if unknown is not None:
        raise _unknown_key(unknown, cfg)
    return cfg, hydra_cfg, groups


def _nodes(cfg: DictConfig, prefix: str = "") -> Iterator[tuple[str, type | None, object, bool]]:
    """(dotted key, the dataclass it is a field of (None: a free dict's), its value unresolved, whether it is
    a nested dataclass) of every key; a nested dataclass's own keys follow its key."""
    owner = OmegaConf.get_type(cfg)
    owner = owner if is_dataclass(owner) else None
    values = OmegaConf.to_container(cfg, resolve=False)  # "???" where a value is missing
    for key in cfg:  # keys; values unresolved
        nested = is_dataclass(OmegaConf.get_type(cfg, key)) and isinstance(values[key], dict)
        yield prefix + str(key), owner, values[key], nested
        if nested:
            yield from _nodes(cfg[key], f"{prefix}{key}.")


def _is_field(key: str, owner: type | None) -> bool:
    return owner is None or key.rpartition(".")[2] in {f.name for f in fields(owner)}


def _unknown_keys(cfg: DictConfig) -> Iterator[str]:
    return (key for key, owner, _, _ in _nodes(cfg) if not _is_field(key, owner))


def _unknown_key(key: str, cfg: DictConfig) -> ValueError:
    """The error for an unknown ``key``: the nearest valid key and the valid keys beside it.

    Nearest: the same name at another level (``steps`` for vla-demo's ``train.steps``), else the closest
    name beside it, else the closest name anywhere."""
    parent, _, name = key.rpartition(".")
    known = [k for k, owner, _, _ in _nodes(cfg) if owner is not None and _is_field(k, owner)]
    siblings = [k for k in known if k.rpartition(".")[0] == parent]
    guess = next((k for k in known if k.rpartition(".")[2] == name), None)
    for candidates in (siblings, known):
        if guess is None:
            leaves = {k.rpartition(".")[2]: k for k in reversed(candidates)}  # the shallowest wins
            near = difflib.get_close_matches(name, leaves, n=1)
            guess = leaves[near[0]] if near else None
    hint = f"; did you mean {guess!r}?" if guess else ""
    where = f" under {parent}" if parent else ""
    names = ", ".join(k.rpartition(".")[2] for k in siblings)
    return ValueError(f"unknown option {key!r}{hint} (options{where}: {names})")


def one_line(error: BaseException) -> str:
    """An error as one line: hydra's and omegaconf's multi-line texts cut to what names the problem."""
    if isinstance(error, MissingConfigException) and error.options:
        return f"{_first_line(error)}; choices: {', '.join(error.options)}"
    if isinstance(error, OverrideParseException):
        return f"cannot parse the command line: {_first_line(error)} (KEY=VALUE; lists as [a,b])"
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    if isinstance(error, HydraException | OmegaConfBaseException):
        for cause in _chain(error):
            if isinstance(cause, MissingMandatoryValue) and cause.full_key:
                return f"{cause.full_key} is required: add {cause.full_key}=..."
            if isinstance(cause, OmegaConfBaseException) and getattr(cause, "full_key", None):
                return f"{cause.full_key}: {cause.msg.splitlines()[0]}"
        return text
    if isinstance(error, ValueError | OSError | ImportError | LookupError):  # the user's input, named
        return text
    return f"{type(error).__name__}: {text} ({DEBUG_ENV}=1 shows the traceback)"


def _chain(error: BaseException | None) -> Iterator[BaseException]:
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


def _first_line(error: BaseException) -> str:
    return next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """Field name -> the comments beside a dataclass field (the comment lines right above it, then those on
    its own lines), for this class and its dataclass bases; {} where the source cannot be read."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        tokens = tokenize.generate_tokens(io.StringIO(source).readline)
        comments = {t.start[0]: t.string.lstrip("#").strip() for t in tokens if t.type == tokenize.COMMENT}
        lines = source.splitlines()
        for node in ast.parse(source).body[0].body:
            if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
                continue
            above, line = [], node.lineno - 1
            while line >= 1 and lines[line - 1].lstrip().startswith("#"):
                above.insert(0, comments[line])
                line -= 1
            beside = [comments[n] for n in range(node.lineno, node.end_lineno + 1) if n in comments]
            if above or beside:
                docs[node.target.id] = " ".join(above + beside)
    return docs


def option_lines(cfg: DictConfig) -> Iterator[tuple[str, str]]:
    """(``key=default``, description) of every option; a nested dataclass's key comes with no default."""
    for key, owner, value, nested in _nodes(cfg):
        doc = field_docs(owner).get(key.rpartition(".")[2], "") if owner is not None else ""
        yield (f"{key}:" if nested else f"{key}={_show(value)}"), doc


def _show(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return "[" + ",".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_show(v)}" for k, v in value.items()) + "}"
    return str(value)


def help_text(prog: str, module_doc: str | None, cfg: DictConfig, groups: dict) -> str:
    summary = (module_doc or prog).strip().split("\n\n")[0].replace("``", "")
    out = [
        summary,
        "",
        f"usage: {prog} [KEY=VALUE ...] [{CONFIG_NAME_FLAG} NAME]",
        "",
        "options (KEY=default):",
    ]
    out += _columns(option_lines(cfg))
    if groups:
        out += ["", "config groups (GROUP=choice):"]
        out += _columns(
            (f"{k}={chosen}", "choices: " + ", ".join(opts)) for k, (chosen, opts) in groups.items()
        )
    out += ["", f"An unknown KEY is an error. Errors are one line; {DEBUG_ENV}=1 shows their traceback."]
    return "\n".join(out)


def _columns(rows, width: int = 30, total: int = 110) -> list[str]:
    out = []
    for left, doc in rows:
        text = textwrap.wrap(doc, total - width - 4) or [""]
        if len(left) > width:
            out.append(f"  {left}")
            out += [f"  {'':{width}}  {line}" for line in text if line]
        else:
            out.append(f"  {left:{width}}  {text[0]}".rstrip())
            out += [f"  {'':{width}}  {line}" for line in text[1:]]
    return out

"""Render a chat template for millions of conversations without running Jinja for each one.

transformers renders a chat template with Jinja, one conversation at a time; on a 151k-vocabulary
tokenizer that costs as much as tokenizing. But most training templates (BELLE's, ChatML/Qwen2.5,
Baichuan, Yi...) only *paste* each message's content into fixed text chosen by the roles. For
such a template the rendered text of a conversation is fixed text with the contents in slots, and
the slots and the fixed text depend only on the conversation's *shape*: its roles, which contents
are empty, and any other message fields. So each shape is rendered once, by transformers' own
renderer (``render_jinja_template``, with ``{% generation %}`` spans), on placeholder contents,
and every conversation of that shape is the result with its contents put in the slots.

That is exact only if the template never looks inside a content, and this module proves it before
using the short cut: :func:`why_jinja_is_needed` walks the template's syntax tree and follows every
value read from a message's ``content`` (through ``set``, namespaces and loops); such a value may be
written out and joined with ``+``/``~``, tested for emptiness (the shape records it) or with type
tests such as ``is string``, and nothing else: a filter (``|trim``), a method (``.strip()``,
``.split('</think>')``), a comparison (``'<think>' in content``), an index, a macro call or an
include sends the template back to Jinja for every conversation (Llama 3's ``|trim`` and Qwen3's
``</think>`` handling do). On top of the proof, the first conversation of every shape is also
rendered by Jinja and compared; any difference sends the template back to Jinja too, with a warning.

Hand-written because neither transformers nor TRL renders a template other than one conversation
at a time through Jinja.
"""

from __future__ import annotations

import logging
import re
from typing import Any

logger = logging.getLogger(__name__)

CLEAN, TEXT, MESSAGE, MESSAGES, NAMESPACE = "clean", "text", "message", "messages", "namespace"
"""What a template expression may hold: nothing from a message's content; a string made of contents
pasted verbatim; one message; a list of messages; a ``namespace()``."""
LOOP_FIELDS = frozenset({"index", "index0", "revindex", "revindex0", "first", "last", "length", "depth", "depth0"})
"""The ``loop`` attributes that are counters (``previtem``/``nextitem`` are messages)."""
DICT_ATTRIBUTES = frozenset(dir(dict))
"""A message is a dict: ``m.copy``, ``m.items``... are its methods, and Jinja's ``m['copy']`` falls
back to them too; none of them may be read (``m.get('field')`` called at once is read as the field)."""

TYPE_TESTS = frozenset({"defined", "undefined", "none", "string", "mapping", "sequence", "iterable",
                        "true", "false", "number", "integer", "float", "boolean", "callable"})
"""Jinja tests whose answer is the same for every string: allowed on a content."""
LIST_FILTERS = {"length": CLEAN, "count": CLEAN, "first": MESSAGE, "last": MESSAGE, "list": MESSAGES,
                "reverse": MESSAGES, "selectattr": MESSAGES, "rejectattr": MESSAGES}
"""Filters on the list of messages that see only its structure, and what they give."""
MAX_SHAPES = 4096
"""Shapes kept rendered; conversations of further shapes are rendered by Jinja (still exact)."""
_SLOT = re.compile("\ue000(\\d+)\ue001")  # placeholders: private-use characters around the message's index


def has_generation_markers(chat_template: str) -> bool:
    """Whether a template marks its assistant replies with ``{% generation %}`` (any trim variant).
    The same test as TRL's ``has_generation_markers`` and transformers' renderer; written here
    because importing TRL's module imports transformers' model code, peft and torchao: seconds that a
    cache hit should not pay."""
    return re.search(r"\{%-?\s*generation\s*-?%\}", chat_template) is not None


class _NeedsJinja(Exception):
    """The template does something with a content beyond pasting it."""


def why_jinja_is_needed(chat_template: str) -> str | None:
    """``None`` when ``chat_template`` only pastes message contents (so the shape short cut is exact);
    otherwise why not, with the template line."""
    import jinja2
    import jinja2.ext

    class Generation(jinja2.ext.Extension):  # parses {% generation %} as transformers does
        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_generation"), [], [], body).set_lineno(lineno)

    if _SLOT.search(chat_template) or "\ue000" in chat_template:
        return "the template holds the placeholder characters"
    try:
        tree = jinja2.Environment(extensions=[Generation, jinja2.ext.loopcontrols]).parse(chat_template)
    except jinja2.TemplateSyntaxError as error:
        return f"the template does not parse ({error})"
    names: dict[str, str] = {}
    for _ in range(20):  # until what each variable may hold stops changing
        before = dict(names)
        try:
            _Walker(names).statements(tree.body)
        except _NeedsJinja as error:
            return str(error)
        if names == before:
            return None
    return "the template's variables do not settle"


class _Walker:
    """One pass over a template's statements, recording in ``names`` what each variable may hold
    and raising :class:`_NeedsJinja` where a content is used other than by pasting it.

    Besides contents and messages, two kinds of value could carry a content where the walk does
    not look: a ``namespace()`` (its attributes are followed only as ``ns.attr``) and ``loop``
    (``loop.previtem`` is a message). Either may only be used through a plain ``.attr``; an alias,
    a subscript, ``|attr`` or passing it on is refused."""

    def __init__(self, names: dict[str, str]):
        self.names = names
        self.names.setdefault("messages", MESSAGES)
        self.capturing = 0  # inside {% set %}...{% endset %}, a macro or a filter block

    # ------------------------------------------------------------------ statements
    def statements(self, nodes) -> bool:
        """Walk statements; whether they may write out content."""
        return any([self.statement(node) for node in nodes])

    def statement(self, node) -> bool:
        from jinja2 import nodes

        if isinstance(node, nodes.Output):
            kinds = [self.expr(child) for child in node.nodes]
            for child, kind in zip(node.nodes, kinds):
                if kind not in (CLEAN, TEXT):
                    self.fail(child, f"writes out a whole {kind}")
            return TEXT in kinds
        if isinstance(node, nodes.If):
            self.expr(node.test)
            if _is_string_test(node.test, self):  # contents are strings: the other branches never run
                return self.statements(node.body)
            return any([self.statements(node.body), *[self.statement(n) for n in node.elif_],
                        self.statements(node.else_)])
        if isinstance(node, nodes.For):
            kind = self.expr(node.iter)
            if node.recursive:
                self.fail(node, "uses a recursive loop")
            if kind == MESSAGES:
                if not isinstance(node.target, nodes.Name):
                    self.fail(node, "unpacks a message")
                self.assign(node.target, MESSAGE)
            elif kind == CLEAN:
                self.assign(node.target, CLEAN)
            else:
                self.fail(node, f"loops over a {kind}")
            if node.test is not None:
                self.expr(node.test)
            return any([self.statements(node.body), self.statements(node.else_)])
        if isinstance(node, nodes.Assign):
            kind = self.expr(node.node)
            if kind == NAMESPACE and not (isinstance(node.node, nodes.Call) and isinstance(node.node.node, nodes.Name)
                                          and node.node.node.name == "namespace"):
                self.fail(node, "gives a namespace a second name")  # its attributes are followed by name
            self.assign(node.target, kind)
            return False
        if isinstance(node, nodes.AssignBlock):
            writes = self.captured(node.body)
            if writes and node.filter is not None:
                self.fail(node, "filters content")
            self.assign(node.target, TEXT if writes else CLEAN)
            return False
        if isinstance(node, nodes.CallBlock):
            call = node.call
            if isinstance(call.node, nodes.ExtensionAttribute) and call.node.name == "_generation":
                if self.capturing:  # transformers measures the span on the output written so far
                    self.fail(node, "opens {% generation %} inside a set block, macro or filter")
                return self.statements(node.body)  # {% generation %} returns its body as it is
            self.expr(call)
            if self.captured(node.body):
                self.fail(node, "passes content to a macro")
            return False
        if isinstance(node, nodes.Macro):
            for default in node.defaults:
                self.clean(default)
            for argument in node.args:
                self.assign(argument, CLEAN)
            if self.captured(node.body):
                self.fail(node, "writes content from a macro")
            return False
        if isinstance(node, nodes.FilterBlock):
            if self.captured(node.body):
                self.fail(node, "filters content")
            return False
        if isinstance(node, nodes.With):
            for target, value in zip(node.targets, node.values):
                kind = self.expr(value)
                if kind == NAMESPACE:
                    self.fail(node, "gives a namespace a second name")
                self.assign(target, kind)
            return self.statements(node.body)
        if isinstance(node, nodes.ExprStmt):
            self.clean(node.node)
            return False
        if isinstance(node, (nodes.Continue, nodes.Break)):
            return False
        if isinstance(node, nodes.Scope):
            return self.statements(node.body)
        self.fail(node, f"uses {type(node).__name__}")  # includes, imports, blocks, autoescape...

    def captured(self, body) -> bool:
        self.capturing += 1
        try:
            return self.statements(body)
        finally:
            self.capturing -= 1

    def assign(self, target, kind: str) -> None:
        from jinja2 import nodes

        if isinstance(target, nodes.Name):
            key = target.name
        elif isinstance(target, nodes.NSRef):
            if self.names.get(target.name, CLEAN) not in (CLEAN, NAMESPACE):
                self.fail(target, f"sets .{target.attr} of a {self.names[target.name]}")
            key = f"{target.name}.{target.attr}"
        elif isinstance(target, nodes.Tuple) and kind == CLEAN:
            for item in target.items:
                self.assign(item, CLEAN)
            return
        else:
            self.fail(target, f"unpacks a {kind}")
        if key == "loop":
            self.fail(target, "assigns to loop")
        self.names[key] = self.join(target, self.names.get(key, CLEAN), kind)

    # ----------------------------------------------------------------- expressions
    def expr(self, node) -> str:
        """What ``node`` may hold. Where only its truth is used (``if``, ``and``, ``not``) any kind
        is fine: a content is true when it is not empty, and that is part of the shape."""
        from jinja2 import nodes

        if isinstance(node, (nodes.Const, nodes.TemplateData)):
            return CLEAN
        if isinstance(node, nodes.Name):
            if node.name == "loop":
                self.fail(node, "uses loop as a value")
            return self.names.get(node.name, CLEAN)
        if isinstance(node, (nodes.Getattr, nodes.Getitem)):
            return self.member(node)
        if isinstance(node, (nodes.Add, nodes.Concat)):
            operands = [node.left, node.right] if isinstance(node, nodes.Add) else node.nodes
            kinds = [self.expr(operand) for operand in operands]
            if any(kind not in (CLEAN, TEXT) for kind in kinds):
                self.fail(node, "joins a message or namespace to text")
            return TEXT if TEXT in kinds else CLEAN
        if isinstance(node, (nodes.And, nodes.Or)):
            return self.join(node, self.expr(node.left), self.expr(node.right))
        if isinstance(node, nodes.Not):
            self.expr(node.node)
            return CLEAN
        if isinstance(node, nodes.CondExpr):
            self.expr(node.test)
            kinds = [self.expr(node.expr1), self.expr(node.expr2) if node.expr2 is not None else CLEAN]
            return self.join(node, *kinds)
        if isinstance(node, nodes.Test):
            kind = self.expr(node.node)
            if kind != CLEAN and node.name not in TYPE_TESTS:
                self.fail(node, f"tests a {kind} with `is {node.name}`")
            self.arguments(node)
            return CLEAN
        if isinstance(node, nodes.Filter):
            kind = self.expr(node.node) if node.node is not None else CLEAN
            if kind == MESSAGES and node.name in ("selectattr", "rejectattr"):
                return self.select(node)
            self.arguments(node)
            if kind == MESSAGES and node.name in LIST_FILTERS:
                return LIST_FILTERS[node.name]
            if kind != CLEAN:
                self.fail(node, f"applies |{node.name} to a {kind}")
            return CLEAN
        if isinstance(node, nodes.Compare):
            kinds = [self.expr(node.expr)] + [self.expr(operand.expr) for operand in node.ops]
            membership = all(op.op in ("in", "notin") for op in node.ops) and kinds[1:] == [MESSAGE]
            if any(kind != CLEAN for kind in kinds) and not (membership and kinds[0] == CLEAN):
                self.fail(node, "compares content")
            return CLEAN
        if isinstance(node, nodes.Call):
            return self.call(node)
        # Anything else (arithmetic, %, lists, dicts, slices...) may only hold clean values.
        for child in node.iter_child_nodes():
            self.clean(child)
        return CLEAN

    def member(self, node) -> str:
        """``x.attr`` / ``x[key]`` (Jinja tries the item, then the attribute, for both)."""
        from jinja2 import nodes

        if isinstance(node.node, nodes.Name) and node.node.name == "loop":
            if not (isinstance(node, nodes.Getattr) and node.attr in LOOP_FIELDS):
                self.fail(node, "reads loop other than by its counters")
            return CLEAN
        base = self.expr(node.node)
        if isinstance(node, nodes.Getattr):
            key = node.attr
        elif isinstance(node.arg, nodes.Const):
            key = node.arg.value
        elif base == MESSAGES:  # messages[i], messages[1:]
            self.expr(node.arg)  # a slice's bounds, an index: must be clean
            if not isinstance(node.arg, nodes.Slice):
                self.clean(node.arg)
            return MESSAGES if isinstance(node.arg, nodes.Slice) else MESSAGE
        else:
            if base != CLEAN:
                self.fail(node, f"reads a {base} by a computed key")
            self.clean(node.arg)
            return CLEAN
        if base == CLEAN:
            return CLEAN
        if base == NAMESPACE and isinstance(node, nodes.Getattr) and isinstance(node.node, nodes.Name):
            return self.names.get(f"{node.node.name}.{key}", CLEAN)
        if base == MESSAGES and isinstance(key, int):
            return MESSAGE
        if base == MESSAGE and isinstance(key, str) and key not in DICT_ATTRIBUTES:
            return TEXT if key == "content" else CLEAN
        self.fail(node, f"reads {key!r} of a {base}")

    def select(self, node) -> str:
        """``messages|selectattr(attribute[, test, ...])``: a subset of the messages, chosen by
        their structure (or a content's emptiness, part of the shape) and nothing else."""
        from jinja2 import nodes

        if node.kwargs or node.dyn_args or node.dyn_kwargs or not node.args or not isinstance(node.args[0], nodes.Const):
            self.fail(node, f"uses |{node.name} with unusual arguments")
        attribute = str(node.args[0].value)
        test = node.args[1].value if len(node.args) > 1 and isinstance(node.args[1], nodes.Const) else None
        if attribute.split(".")[0] == "content" and not (
                attribute == "content" and (len(node.args) == 1 or test in TYPE_TESTS)):
            self.fail(node, f"chooses messages by their content with |{node.name}")
        for argument in node.args[1:]:
            self.clean(argument)
        return MESSAGES

    def call(self, node) -> str:
        from jinja2 import nodes

        target = node.node
        if isinstance(target, nodes.Getattr) and target.attr == "get" and self.expr(target.node) == MESSAGE:
            if not node.args or not isinstance(node.args[0], nodes.Const):
                self.fail(node, "reads a message field by a computed key")
            for extra in [*node.args[1:], *node.kwargs]:
                self.clean(extra)
            return TEXT if node.args[0].value == "content" else CLEAN
        if isinstance(target, nodes.Name) and target.name == "namespace":
            self.arguments(node)
            return NAMESPACE
        if isinstance(target, nodes.Getattr) and isinstance(target.node, nodes.Name) and target.node.name == "loop":
            if target.attr not in ("cycle", "changed"):
                self.fail(node, f"calls loop.{target.attr}")
        else:
            self.clean(target)
        self.arguments(node)
        return CLEAN

    def arguments(self, node) -> None:
        for argument in [*node.args, *[k.value for k in node.kwargs]]:
            self.clean(argument)
        for extra in (node.dyn_args, node.dyn_kwargs):
            if extra is not None:
                self.clean(extra)

    def clean(self, node) -> None:
        kind = self.expr(node)
        if kind != CLEAN:
            self.fail(node, f"passes a {kind} on")

    def join(self, node, *kinds: str) -> str:
        """What a value that may be any of ``kinds`` may hold."""
        found = {kind for kind in kinds if kind != CLEAN}
        if len(found) > 1:
            self.fail(node, f"mixes {' and '.join(sorted(found))} in one variable")
        return found.pop() if found else CLEAN

    @staticmethod
    def fail(node, what: str):
        raise _NeedsJinja(f"line {getattr(node, 'lineno', '?')}: the template {what}")


def _is_string_test(test, walker: _Walker) -> bool:
    """``message.content is string`` (or ``message['content']``), read straight from a message."""
    from jinja2 import nodes

    if not (isinstance(test, nodes.Test) and test.name == "string" and not test.args):
        return False
    read = test.node
    key = read.attr if isinstance(read, nodes.Getattr) else getattr(getattr(read, "arg", None), "value", None)
    return (isinstance(read, (nodes.Getattr, nodes.Getitem)) and key == "content"
            and walker.expr(read.node) == MESSAGE)


class ChatRenderer:
    """Render conversations with ``chat_template`` into pieces cut at the ``{% generation %}`` spans.

    :meth:`pieces` gives, for a batch of conversations, every non-empty piece of rendered text in
    order, with its conversation's index and whether it is trained (inside a ``{% generation %}``
    block): exactly what transformers' ``render_jinja_template(..., return_assistant_tokens_mask=True)``
    and a cut at its spans give, at the cost of ``str.format`` per conversation.
    """

    def __init__(self, chat_template: str, **template_kwargs: Any):
        self.chat_template = chat_template
        self.template_kwargs = template_kwargs
        self.why_jinja = why_jinja_is_needed(chat_template)
        if self.why_jinja:
            logger.info("rendering the chat template with Jinja for each conversation (%s)", self.why_jinja)
        self.shapes: dict[tuple, list[tuple[str, int]] | None] = {}
        self.seen = self.learned = 0
        self.learning = True

    def pieces(self, conversations) -> tuple[list[str], list[int], list[int]]:
        """(piece texts, conversation index of each, 1 if trained else 0) for ``conversations``."""
        texts: list[str] = []
        rows: list[int] = []
        trained: list[int] = []
        for row, messages in enumerate(conversations):
            program = None
            if self.why_jinja is None:
                self.seen += 1
                key = _shape(messages)
                program = self.shapes.get(key, False) if key is not None else None
                if program is False:
                    program = self._learn(key, messages) if self.learning else None
            if program is None:
                for piece, bit in self.render_with_jinja(messages):
                    texts.append(piece)
                    rows.append(row)
                    trained.append(bit)
                continue
            contents = [message["content"] for message in messages]
            for layout, bit in program:
                texts.append(layout.format(*contents))
                rows.append(row)
                trained.append(bit)
        return texts, rows, trained

    def render_with_jinja(self, messages) -> list[tuple[str, int]]:
        """The non-empty pieces of one conversation, rendered by transformers (the reference)."""
        from transformers.utils.chat_template_utils import render_jinja_template

        rendered, spans = render_jinja_template(conversations=[messages], chat_template=self.chat_template,
                                                return_assistant_tokens_mask=True, **self.template_kwargs)
        text = rendered[0]
        return [(text[start:end], bit) for start, end, bit in cuts(spans[0], len(text)) if end > start]

    def _learn(self, key: tuple, messages) -> list[tuple[str, int]] | None:
        """Render the shape of ``messages`` on placeholders; check it on ``messages`` itself."""
        self.learned += 1
        if self.learned > 64 and self.learned * 4 > self.seen:
            # Nearly every conversation has a shape of its own (a per-message id or name): learning
            # costs two renderings each, so the rest are rendered by Jinja once.
            self.learning = False
            logger.info("rendering the chat template with Jinja for each conversation (few share a shape)")
            return None
        placeholders = [{**message, "content": f"\ue000{i}\ue001" if message["content"] else ""}
                        for i, message in enumerate(messages)]
        try:
            program = [(_layout(piece), bit) for piece, bit in self.render_with_jinja(placeholders)]
        except Exception:  # noqa: BLE001 - a template that refuses this shape (raise_exception) is left to
            program = None  # Jinja on the real conversation, which raises the real error
        if program is not None:
            contents = [message["content"] for message in messages]
            try:
                same = [(layout.format(*contents), bit) for layout, bit in program] == self.render_with_jinja(messages)
            except (IndexError, KeyError, ValueError):
                same = False
            if not same:
                self.why_jinja = "placing the contents into the rendered shape did not give Jinja's rendering"
                logger.warning("rendering the chat template with Jinja for each conversation (%s)", self.why_jinja)
                return None
        if len(self.shapes) < MAX_SHAPES:
            self.shapes[key] = program
        return program


def _layout(piece: str) -> str:
    """A ``str.format`` layout of a rendered piece: its text with each placeholder ``{i}``."""
    parts, position = [], 0
    for match in _SLOT.finditer(piece):
        parts.append(piece[position:match.start()].replace("{", "{{").replace("}", "}}"))
        parts.append("{" + match.group(1) + "}")
        position = match.end()
    if "\ue000" in piece[position:] or "\ue001" in piece[position:]:
        raise ValueError("a placeholder was cut")  # a {% generation %} boundary inside a content
    parts.append(piece[position:].replace("{", "{{").replace("}", "}}"))
    return "".join(parts)


def _shape(messages) -> tuple | None:
    """What the rendering of a content-pasting template depends on besides the contents: the roles,
    which contents are empty, and every other field (with its type: ``1``, ``1.0`` and ``True``
    print differently). ``None``: not a plain list of messages with string contents, or a field
    holding the placeholder characters; such a conversation is rendered by Jinja."""
    shape = []
    for message in messages:
        if type(message) is not dict or type(message.get("content")) is not str:
            return None
        role = message.get("role")
        if len(message) == 2 and type(role) is str and "\ue000" not in role:
            shape.append((role, message["content"] != ""))
            continue
        others = []
        for key, value in message.items():
            if key == "content":
                continue
            if type(key) is not str or (type(value) is str and "\ue000" in value):
                return None
            try:
                hash(value)
            except TypeError:
                return None
            if isinstance(value, (tuple, frozenset)):
                return None  # could hide placeholder characters or types
            others.append((key, type(value).__name__, repr(value)))  # -0.0 == 0.0, yet prints otherwise
        shape.append((tuple(sorted(others)), message["content"] != ""))
    return tuple(shape)


def cuts(spans, length: int):
    """(start, end, trained) pieces of a rendered text of ``length`` characters cut at ``spans``."""
    position = 0
    for start, end in sorted(spans):
        yield position, start, 0
        yield start, end, 1
        position = max(position, end)
    yield position, length, 0

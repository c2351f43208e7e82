import subprocess
import sys


def test_every_stage_is_mounted(run_belle):
    code, out, _ = run_belle("--help")
    assert code == 0
    for command in ("data", "train", "merge", "vocab", "eval", "hub", "xor", "quantize", "export", "chat", "serve",
                    "testing"):
        assert f" {command} " in out, command


def test_help_does_not_import_the_heavy_libraries():
    code = ("import sys; from belle_hf.cli import main; main(['--help']); "
            "print(sorted(m for m in ('torch', 'transformers', 'datasets', 'trl', 'gptqmodel', 'openai') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_user_errors_exit_1_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "belle_hf.cli", "data", "convert", str(tmp_path / "nope.jsonl"),
                             "-o", str(tmp_path / "o.jsonl")], capture_output=True, text=True)
    assert result.returncode == 1
    assert "nope.jsonl" in result.stderr and "Traceback" not in result.stderr


ENDPOINT_COMMANDS = [("eval", "judge"), ("eval", "generate"), ("eval", "serve-page"), ("data", "generate")]


def test_endpoint_options_are_declared_once_with_one_default_each():
    import dataclasses

    import typer

    from belle_hf.cli import app
    from belle_hf.llm import EndpointConfig
    from belle_hf.llm.options import ENDPOINT_OPTIONS

    defaults = {f.name: f.default for f in dataclasses.fields(EndpointConfig)}
    root = typer.main.get_command(app)
    for group, name in ENDPOINT_COMMANDS:
        command = root.commands[group].commands[name]
        options = {param.name: param for param in command.params}
        for field in ENDPOINT_OPTIONS:
            param = options[field]
            assert param.opts == ["--" + field.replace("_", "-")], (name, field)
            if (group, name, field) != ("eval", "generate", "model"):  # also names a local model there
                assert param.help == EndpointConfig.__dataclass_fields__[field].metadata["help"]
            if defaults[field] is not dataclasses.MISSING:
                assert param.default == defaults[field], (group, name, field)


def test_a_bad_endpoint_setting_names_the_flag(run_belle, tmp_path):
    code, _, err = run_belle("data", "generate", "--seed-tasks", tmp_path / "s.json", "--base-url",
                             "http://127.0.0.1:9/v1", "--model", "m", "--timeout", "0", "-n", "3", "-o", tmp_path / "g.jsonl")
    assert code == 2 and "--timeout" in err
    code, _, err = run_belle("eval", "generate", "--eval-set", tmp_path / "e.json", "--model", "m", "--base-url",
                             "file:///etc/passwd", "-o", tmp_path / "a.jsonl")
    assert code == 1 and err.startswith("error: --base-url: must be an http:// or https:// URL")

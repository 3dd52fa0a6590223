import socket
import subprocess
import sys

import pytest

from revision_controller.cli import _namespaces, main, parser


def test_run_flags_and_their_defaults() -> None:
    args = parser().parse_args(["run"])
    assert (args.kubeconfig, args.namespace, args.function_version) == (None, None, "v1beta2")
    assert (args.default_polling_interval, args.workers) == (5.0, 4)
    assert (args.log_level, args.log_format) == ("info", "text")
    args = parser().parse_args(["run", "--default-polling-interval", "1m30s", "--workers", "8",
                                "--function-version", "v1beta1", "--log-format", "json"])
    assert (args.default_polling_interval, args.workers, args.function_version) == (90.0, 8, "v1beta1")


@pytest.mark.parametrize("flags", [
    ["--default-polling-interval", "5"], ["--default-polling-interval", "0s"], ["--workers", "0"],
    ["--function-version", "v1"], ["--log-format", "xml"],
])
def test_bad_flags_are_refused_with_usage(flags: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exited:
        parser().parse_args(["run", *flags])
    assert exited.value.code == 2
    assert flags[0] in capsys.readouterr().err


def test_namespaces_may_be_repeated_or_comma_separated() -> None:
    assert _namespaces(["a,b", "c", " b ", ""]) == ("a", "b", "c")
    assert _namespaces(None) == ()


def test_a_missing_kubeconfig_is_a_clear_error_not_a_traceback(tmp_path, capsys) -> None:
    missing = tmp_path / "nope"
    assert main(["run", "--kubeconfig", str(missing)]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "Traceback" not in err


def test_outside_a_cluster_without_kubeconfig_says_so(capsys, monkeypatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert main(["run"]) == 2
    assert "in-cluster" in capsys.readouterr().err


def test_the_console_script_answers_help() -> None:
    done = subprocess.run([sys.executable, "-m", "revision_controller.cli", "run", "--help"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0 and "--default-polling-interval" in done.stdout


@pytest.mark.parametrize("flag", ["--health-probe-bind-address", "--metrics-bind-address"])
def test_a_port_in_use_names_the_port_and_its_flag(flag: str, tmp_path, capsys) -> None:
    from revision_controller.testing import ApiServer
    with ApiServer() as server, socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        other = "--metrics-bind-address" if flag != "--metrics-bind-address" else "--health-probe-bind-address"
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        assert main(["run", "--kubeconfig", str(kubeconfig), flag, f"127.0.0.1:{port}", other, "0"]) == 2
    err = capsys.readouterr().err
    assert f"port {port} for {flag} is in use" in err
    assert "Kubernetes client" not in err and "Traceback" not in err

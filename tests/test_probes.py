import re

import httpx
import pytest

from revision_controller.metrics import Metrics
from revision_controller.probes import EndpointServer, metrics_route, parse_address, probe_routes


@pytest.mark.parametrize("text, address", [(":8081", ("0.0.0.0", 8081)), ("127.0.0.1:0", ("127.0.0.1", 0)),
                                           ("0.0.0.0:8080", ("0.0.0.0", 8080)), ("0", None)])
def test_addresses_in_controller_runtime_style(text: str, address: tuple | None) -> None:
    assert parse_address(text) == address


@pytest.mark.parametrize("text", ["8081", "localhost", ":http", ""])
def test_bad_addresses_say_what_to_write(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape("e.g. :8081")):
        parse_address(text)


def test_a_probe_is_200_when_every_check_passes_and_503_naming_the_one_that_fails() -> None:
    state = {"watch": True}
    checks = {"/readyz": {"watch": lambda: (state["watch"], "not established"), "other": lambda: (True, "")}}
    server = EndpointServer(("127.0.0.1", 0), probe_routes(checks))
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}"
        ready = httpx.get(f"{url}/readyz", timeout=5)
        assert ready.status_code == 200 and "[+]watch ok" in ready.text
        state["watch"] = False
        failing = httpx.get(f"{url}/readyz", timeout=5)
        assert failing.status_code == 503 and "[-]watch failed: not established" in failing.text
        assert httpx.get(f"{url}/nothing", timeout=5).status_code == 404
    finally:
        server.stop()


def test_metrics_are_served_in_prometheus_text_with_conventional_names() -> None:
    metrics = Metrics()
    metrics.count_from(lambda: 3, lambda: 1)
    metrics.polled("github", "github o/r@main", True, 0.2)
    metrics.polled("github", "github o/r@main", False, 0.1)
    metrics.changed("source")
    metrics.patched("patched")
    metrics.leading(True)
    server = EndpointServer(("127.0.0.1", 0), metrics_route(metrics.registry))
    server.start()
    try:
        text = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5).text
    finally:
        server.stop()
    for line in ('revision_controller_polls_total{outcome="success",provider="github"} 1.0',
                 'revision_controller_polls_total{outcome="failure",provider="github"} 1.0',
                 'revision_controller_poll_duration_seconds_count{provider="github"} 2.0',
                 'revision_controller_changes_detected_total{type="source"} 1.0',
                 'revision_controller_patches_total{result="patched"} 1.0',
                 "revision_controller_watched_functions 3.0", "revision_controller_targets 1.0",
                 "revision_controller_leader 1.0"):
        assert line in text, line
    assert 'revision_controller_last_successful_poll_timestamp_seconds{target="github o/r@main"}' in text


def test_a_forgotten_target_leaves_the_metrics() -> None:
    metrics = Metrics()
    metrics.polled("git", "t", True, 0.1)
    metrics.forget_target("t")
    metrics.forget_target("never polled")
    assert metrics.registry.get_sample_value("revision_controller_last_successful_poll_timestamp_seconds",
                                             {"target": "t"}) is None

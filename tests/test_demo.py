import subprocess
import sys


def test_the_demo_detects_a_commit_and_patches_the_function_quickly() -> None:
    done = subprocess.run([sys.executable, "-m", "revision_controller.cli", "demo"],
                          capture_output=True, text=True, timeout=60, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "source changed from" in output
    assert "status after:" in output and '"build"' not in output.split("status after:")[1].splitlines()[0]
    assert "Event Normal SourceChanged" in output
    seconds = float(output.split("[demo] done in ")[1].split("s")[0])
    assert seconds < 30

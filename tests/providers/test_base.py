from providers.base import GitSource, redact


def test_a_source_is_described_without_credentials_written_into_its_url() -> None:
    source = GitSource("git", "", "https://bot:s3cr3t@git.example.com/o/r.git")
    assert source.describe() == "git https://***@git.example.com/o/r.git"
    assert "s3cr3t" not in GitSource("github", "https://x:s3cr3t@ghe.example/api/v3", "o/r").describe()


def test_redact_leaves_plain_urls_and_names_alone() -> None:
    assert redact("https://github.com/o/r.git") == "https://github.com/o/r.git"
    assert redact("group/sub/project") == "group/sub/project"
    assert redact("") == ""

from revision_controller.function import FunctionRef, view_of
from revision_controller.params import PARAMS_ANNOTATION, SWITCH_ANNOTATION


def test_every_sample_yields_a_view_with_its_source(samples: dict[str, dict]) -> None:
    assert len(samples) == 28
    for name, obj in samples.items():
        view = view_of(obj)
        src = obj["spec"].get("build", {}).get("srcRepo", {})
        assert view.ref.name == obj["metadata"]["name"], name
        assert view.src_url == src.get("url", ""), name
        assert view.revision == src.get("revision", ""), name
        assert view.sub_path == src.get("sourceSubPath", ""), name
        assert view.has_serving == ("serving" in obj["spec"]), name
        assert view.image == obj["spec"].get("image", ""), name


def test_annotations_credentials_and_recorded_values() -> None:
    view = view_of({
        "metadata": {"namespace": "ns", "name": "fn", "uid": "u-1", "resourceVersion": "7",
                     "annotations": {SWITCH_ANNOTATION: "enable", PARAMS_ANNOTATION: "type: source"}},
        "spec": {"image": "r/app:v1", "imageCredentials": {"name": "push"},
                 "build": {"srcRepo": {"url": "https://github.com/o/r", "credentials": {"name": "tok"},
                                       "bundleContainer": {"image": "r/src:v1"}}},
                 "serving": {}},
        "status": {"sources": [{"name": "other", "git": {"commitSha": "bbb"}},
                               {"name": "default", "git": {"commitSha": "aaa"},
                                "bundle": {"digest": "sha256:1"}}],
                   "revision": {"imageDigest": "sha256:2"}},
    })
    assert view.ref == FunctionRef("ns", "fn")
    assert (view.uid, view.resource_version) == ("u-1", "7")
    assert (view.switch, view.params) == ("enable", "type: source")
    assert view.credentials == "tok" and view.image_credentials == "push"
    assert view.has_bundle and view.bundle_image == "r/src:v1"
    assert view.has_serving and view.has_build
    assert (view.commit_sha, view.bundle_digest, view.image_digest) == ("aaa", "sha256:1", "sha256:2")


def test_a_bare_object_yields_empty_fields() -> None:
    view = view_of({"metadata": {"name": "fn", "namespace": "ns"}})
    assert not view.has_build and not view.has_serving
    assert view.switch is None and view.commit_sha == "" and view.src_url == ""

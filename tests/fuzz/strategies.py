"""What a tenant may write into a Function or a Secret, as Hypothesis strategies.

Each strategy mixes well-formed values with the ways they go wrong: deep nesting, YAML
tags, sizes past every bound, unicode, wrong types at each level.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import yaml
from hypothesis import strategies as st

from revision_controller.params import KNOWN_KEYS, MAX_PARAMS_BYTES, PARAMS_ANNOTATION, SWITCH_ANNOTATION

# --- scalars ---------------------------------------------------------------------------------

WEIRD_TEXT = ["", " ", "\n", "\t", "\x00", "\ufeff", "é", "µ", "μ", "\u0661٢", "\U0001d7d9", "\u202e", "ﬀ", "\\", "%",
              "%00", "%2F", "..", ".", "/", ":", "@", "#", "?", "[", "]", "{", "}", "'", '"', "~", "*",
              "&a", "!!", "- ", ": ", "\r\n", "\u2028"]
weird = st.one_of(st.sampled_from(WEIRD_TEXT), st.integers(100, 1_000).map(lambda size: "a" * size))
short_text = st.text(max_size=40)
some_text = st.one_of(short_text, weird, st.lists(st.one_of(short_text, weird), max_size=6).map("".join))
big_text = st.sampled_from([MAX_PARAMS_BYTES - 1, MAX_PARAMS_BYTES, MAX_PARAMS_BYTES + 1, 100_000,
                            1_100_000]).flatmap(lambda size: st.sampled_from(["a", "é", "[", "\n", "1s"])
                                                .map(lambda unit: unit * (size // len(unit.encode()))))

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), some_text)
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(some_text, inner, max_size=3)), max_leaves=8)


def nested(depth: int, core: str = "1s", flow: str = "[]") -> str:
    return flow[0] * depth + core + flow[1] * depth


deep_text = st.tuples(st.sampled_from([10, 100, 999, 1_000, 1_001, 3_000]),
                      st.sampled_from(["[]", "{}"])).map(lambda spec: nested(spec[0], "a: 1" if spec[1] == "{}"
                                                                              else "1s", spec[1]))

# --- durations -------------------------------------------------------------------------------

UNITS = ["ns", "us", "µs", "μs", "ms", "s", "m", "h", "d", "S", "", " s", "sec"]
number = st.one_of(st.integers(min_value=0, max_value=10**30).map(str),
                   st.sampled_from(["0", "00", ".5", "5.", ".", "1e3", "\u0661", "\U0001d7d9", "0x10", "inf",
                                    "nan", "1_000", "-1", "+1"]),
                   st.integers(1, 9_000).map(lambda size: "9" * size),
                   st.floats(min_value=0, allow_nan=False, allow_infinity=False).map(repr))
durations = st.one_of(
    st.lists(st.tuples(number, st.sampled_from(UNITS)).map("".join), min_size=0, max_size=5).map("".join),
    st.tuples(st.sampled_from(["", "+", "-", " ", "--"]), number, st.sampled_from(UNITS)).map("".join),
    st.text(alphabet="0123456789.+-nsuµμmhd ", max_size=30),
    some_text)

# --- the params annotation -------------------------------------------------------------------

TAGS = ["!!int", "!!float", "!!bool", "!!null", "!!str", "!!timestamp", "!!binary", "!!set", "!!omap",
        "!!pairs", "!!seq", "!!map", "!!merge", "!!python/object/apply:os.system", "!!python/name:os.system",
        "!!python/tuple", "!local", "!<tag:yaml.org,2002:int>", "!<!>", "!!value", "!!yaml"]
param_keys = st.one_of(st.sampled_from(KNOWN_KEYS), some_text)
param_values = st.one_of(
    st.sampled_from(["source", "image", "source-image", "github", "gitlab", "gitee", "git", "1m", "500ms", "true",
                     "PrivateToken", "https://gitlab.example.com", "group/sub/p", "~", "null", "yes", "0x1F",
                     "2001-12-14t21:59:43.10-05:00", "1_000", ".inf", "<<", "*a", "&a 1"]),
    durations, json_scalars)


@st.composite
def tagged_yaml(draw: st.DrawFn) -> str:
    lines = []
    for _ in range(draw(st.integers(1, 4))):
        key = draw(st.sampled_from(KNOWN_KEYS))
        tag = draw(st.sampled_from(TAGS))
        value = draw(st.sampled_from(["1s", "x", "[1, 2]", "{a: 1}", "", "AAAA", "99999999999999999999",
                                      "2001-13-45", "1" * 5_000, "- a\n  - b", "'1m'"]))
        lines.append(f"{key}: {tag} {value}")
    return "\n".join(lines)


@st.composite
def dumped_yaml(draw: st.DrawFn) -> str:
    """Real YAML from a mapping of known and unknown keys to values of any shape."""
    mapping = draw(st.dictionaries(param_keys, st.one_of(param_values, json_values), max_size=8))
    style = draw(st.sampled_from([None, True, False]))
    return yaml.safe_dump(mapping, default_flow_style=style, allow_unicode=draw(st.booleans()))


yaml_fragments = st.sampled_from([
    "a: &x [*x]", "&a [*a, *a]", "? [a]\n: 1", "? {a: 1}\n: 1", "<<: {type: image}", "<<: *nope",
    "a: 1\na: 2", "%YAML 1.1\n---\ntype: source", "--- 1\n--- 2", "...", "'", "\"\\u00", "{", "- - -",
    "type: source\n\ttab: 1", "a: b: c", "\x00", "\ufeff type: source", "!!python/object:__main__.X {}",
    "a: [" + "b, " * 2_000 + "]", "x: " + "&a " * 10,
    "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d]"])

light_params_texts = st.one_of(st.none(), some_text, dumped_yaml(), tagged_yaml(), yaml_fragments,
                               st.sampled_from(["type: image", "type: source-image", "repo-type: git",
                                                "repo-type: gitlab\nbase-url: http://127.0.0.1:1"]))
params_texts = st.one_of(st.none(), some_text, dumped_yaml(), tagged_yaml(), yaml_fragments,
                         deep_text, deep_text.map(lambda text: "polling-interval: " + text), big_text,
                         st.lists(st.one_of(dumped_yaml(), yaml_fragments, weird), max_size=4).map("\n".join))

# --- repository URLs -------------------------------------------------------------------------

hosts = st.one_of(
    st.sampled_from(["github.com", "GitHub.COM", "gitlab.com", "gitee.com", "git.example.com", "127.0.0.1",
                     "localhost", "[::1]", "[fe80::1%25eth0]", "[::1", "::1]", "[v1.x]", "bücher.example",
                     "xn--bcher-kva.example", "h%41st", "a..b", "-a.b", "", " ", "0", "256.256.256.256",
                     "[::ffff:127.0.0.1]", "é", "h\u2100st", "h\uff0fst"]),
    st.text(alphabet="abcxyz019.-_[]:%@", min_size=1, max_size=20))
ports = st.one_of(st.just(""), st.sampled_from([":", ":0", ":1", ":443", ":65535", ":65536", ":99999999999",
                                                ":-1", ":1 2", ":x", ":\uff11", ":٣", ":+1", ": 8"]),
                  st.integers(-10, 10**6).map(lambda port: f":{port}"))
userinfo = st.one_of(st.just(""), st.sampled_from(["git@", "user:pass@", "tok:x-oauth@", "@", "a@b@", ":@",
                                                   "us%40er@", "ü@"]))
names = st.from_regex(r"[A-Za-z0-9_.+-]{1,20}", fullmatch=True)
segments = st.one_of(st.sampled_from(["owner", "repo", "repo.git", ".git", "..", ".", "", "a b", "ä", "%2e%2e",
                                      "-", "_", "a+b", "~u"]), short_text, names)
paths = st.lists(segments, max_size=5).map("/".join)
schemes = st.sampled_from(["https://", "http://", "ssh://", "git://", "HTTPS://", "file://", "ftp://", "",
                           "https:/", "https:", "//", "javascript:"])


@st.composite
def repository_urls(draw: st.DrawFn) -> str:
    form = draw(st.sampled_from(["good", "url", "scp", "text"]))
    if form == "good":
        host = draw(st.sampled_from(["github.com", "gitlab.com", "gitee.com", "git.example.com", "127.0.0.1:8080",
                                     "[::1]:3000", "Git.Example.com"]))
        path = "/".join(draw(st.lists(names, min_size=1, max_size=3)))
        return f"{draw(st.sampled_from(['https://', 'http://', 'ssh://git@']))}{host}/{path}"
    if form == "scp":
        return f"{draw(st.sampled_from(['git', 'u', '']))}@{draw(hosts)}:{draw(paths)}"
    if form == "text":
        return draw(some_text)
    tail = draw(st.sampled_from(["", "/", "?x=1", "#frag", "/.git", ".git/", " "]))
    return f"{draw(schemes)}{draw(userinfo)}{draw(hosts)}{draw(ports)}/{draw(paths)}{tail}"


base_urls = st.one_of(st.just(""), repository_urls(),
                      st.tuples(schemes, userinfo, hosts, ports, st.sampled_from(["", "/api/v3", "/gitlab", "/"]))
                      .map("".join))

# --- image references ------------------------------------------------------------------------

digests = st.one_of(st.just(""), st.sampled_from(["@sha256:" + "a" * 64, "@sha256:" + "A" * 64, "@sha256:abc",
                                                  "@md5:" + "a" * 32, "@", "@sha512:" + "0" * 128]))
tags = st.one_of(st.just(""), st.sampled_from([":v1", ":latest", ":", ":-x", ":é", ":a:b", ":1.0_rc-2"]),
                 st.integers(127, 130).map(lambda size: ":" + "a" * size))


@st.composite
def image_references(draw: st.DrawFn) -> str:
    form = draw(st.sampled_from(["good", "parts", "text"]))
    if form == "text":
        return draw(some_text)
    if form == "good":
        host = draw(st.sampled_from(["", "ghcr.io/", "localhost:5000/", "127.0.0.1:1/", "[::1]:5000/", "docker.io/"]))
        name = "/".join(draw(st.lists(st.from_regex(r"[a-z0-9]+(?:[._-][a-z0-9]+)?", fullmatch=True),
                                      min_size=1, max_size=3)))
        return f"{host}{name}{draw(tags)}{draw(digests)}"
    host = draw(st.one_of(st.just(""), st.tuples(hosts, ports).map(lambda h: "".join(h) + "/")))
    name = draw(st.lists(st.one_of(st.sampled_from(["app", "library", "a__b", "a--b", "A", "a.", "_a", "ä"]),
                                   short_text), min_size=1, max_size=4).map("/".join))
    return f"{draw(st.sampled_from(['', 'https://', 'docker://']))}{host}{name}{draw(tags)}{draw(digests)}"


# --- Functions as the API gives them ---------------------------------------------------------

def maybe(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field that may be absent (None here, dropped by the caller), of its type, or of any other."""
    return st.one_of(st.none(), values, json_values)


@st.composite
def functions(draw: st.DrawFn) -> Any:
    """A Function object with any field missing or of another type at every level."""
    annotations = {SWITCH_ANNOTATION: draw(maybe(st.sampled_from(["enable", "disable", "Enable", ""]))),
                   PARAMS_ANNOTATION: draw(maybe(light_params_texts))}
    src_repo = {"url": draw(maybe(repository_urls())), "revision": draw(maybe(st.sampled_from(
                    ["main", "abc1234", "A" * 40, "refs/heads/x", "", " "]))),
                "sourceSubPath": draw(maybe(some_text)), "credentials": draw(maybe(st.fixed_dictionaries(
                    {"name": maybe(some_text)}))),
                "bundleContainer": draw(maybe(st.fixed_dictionaries({"image": maybe(image_references())})))}
    spec = {"image": draw(maybe(image_references())), "build": draw(maybe(st.just(src_repo).map(
                lambda repo: {"srcRepo": repo}))),
            "serving": draw(maybe(st.just({}))),
            "imageCredentials": draw(maybe(st.fixed_dictionaries({"name": maybe(some_text)})))}
    obj = {"metadata": draw(maybe(st.fixed_dictionaries(
               {"name": maybe(some_text), "namespace": maybe(some_text), "uid": maybe(some_text),
                "resourceVersion": maybe(some_text), "annotations": maybe(st.just(annotations))}))),
           "spec": draw(maybe(st.just(spec))), "status": draw(maybe(statuses()))}
    return draw(st.one_of(st.just(obj), json_values)) if draw(st.integers(0, 9)) == 0 else obj


@st.composite
def statuses(draw: st.DrawFn) -> Any:
    """A Function's status, recorded by OpenFunction or written by anyone with the right."""
    source = {"name": draw(maybe(st.sampled_from(["default", "other", "Default"]))),
              "git": draw(maybe(st.fixed_dictionaries({"commitSha": maybe(st.one_of(
                  st.sampled_from(["a" * 40, "b" * 40, ""]), st.integers(), some_text))}))),
              "bundle": draw(maybe(st.fixed_dictionaries({"digest": maybe(some_text)})))}
    return {"sources": draw(maybe(st.lists(st.one_of(st.just(source), json_values), max_size=3))),
            "revision": draw(maybe(st.fixed_dictionaries({"imageDigest": maybe(some_text)}))),
            "build": draw(maybe(json_values)), "serving": draw(maybe(json_values))}


# --- Secrets ---------------------------------------------------------------------------------

def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


raw_bytes = st.one_of(st.binary(max_size=64), some_text.map(str.encode),
                      st.sampled_from([b"\xff\xfe", b"tok\nen", b" tok ", b"\x00", "é".encode(),
                                       "tök".encode("latin-1")]),
                      st.sampled_from([16 * 1024, 16 * 1024 + 1, 1024 * 1024 + 1]).map(lambda size: b"t" * size))
secret_values = st.one_of(raw_bytes.map(b64), some_text, st.sampled_from(["=", "====", "YQ", "YQ==\n", "Y Q=="]))


@st.composite
def docker_configs(draw: st.DrawFn) -> bytes:
    """The JSON of a .dockerconfigjson: right, or wrong at any level, or nested past any sense."""
    auth = draw(st.one_of(raw_bytes.map(b64), json_values, st.sampled_from([b64(b"u:p"), b64(b":p"), b64(b"u")])))
    entry = draw(st.one_of(st.just({"auth": auth}),
                           st.fixed_dictionaries({"username": json_values, "password": json_values}),
                           json_values))
    server = draw(st.one_of(hosts, st.sampled_from(["r.example:5000", "https://r.example:5000/v2/",
                                                    "https://index.docker.io/v1/"])))
    document = draw(st.one_of(st.just({"auths": {server: entry}}), st.just({server: entry}),
                              st.fixed_dictionaries({"auths": json_values}), json_values))
    text = json.dumps(document)
    depth = draw(st.sampled_from([0, 0, 0, 10, 900, 1_000, 5_000]))
    if depth:
        text = text.replace(json.dumps(entry), nested(depth, json.dumps(entry)), 1)
    return text.encode()


secret_data = st.one_of(
    st.dictionaries(st.sampled_from(["password", ".dockerconfigjson", ".dockercfg", "username", "x"]),
                    st.one_of(secret_values, docker_configs().map(b64)), max_size=3),
    st.fixed_dictionaries({".dockerconfigjson": docker_configs().map(b64)}),
    st.fixed_dictionaries({".dockercfg": docker_configs().map(b64)}),
    st.fixed_dictionaries({"password": secret_values}))
secret_types = st.sampled_from(["kubernetes.io/dockerconfigjson", "kubernetes.io/dockercfg", "Opaque", "",
                                "kubernetes.io/basic-auth"])


# --- Functions for the daemon process ----------------------------------------------------------

# Nothing listens on ports 1 and 9 of loopback (binding them takes root): polls fail at once.
loopback_origins = st.sampled_from(["http://127.0.0.1:1", "http://localhost:9", "https://[::1]:1",
                                    "http://127.0.0.1:9", "ssh://git@127.0.0.1:1"])
loopback_urls = st.tuples(loopback_origins, st.lists(st.one_of(names, names, segments), min_size=1, max_size=3)
                          .map("/".join)).map("/".join)
image_names = st.from_regex(r"[a-z0-9]+(?:[._-][a-z0-9]+)?(?:/[a-z0-9]+)?", fullmatch=True)
loopback_images = st.tuples(st.sampled_from(["127.0.0.1:1", "localhost:9", "[::1]:1"]), image_names,
                            tags).map(lambda parts: f"{parts[0]}/{parts[1]}{parts[2]}")


@st.composite
def neighbour_functions(draw: st.DrawFn) -> dict[str, Any]:
    """Functions as a cluster may hold them beside good ones: mostly well formed, junk in a field
    or two, repositories and registries on this machine's closed ports."""
    kind = draw(st.sampled_from(["source", "source-image", "image"]))
    good = f"type: {kind}\nrepo-type: git\ninsecure-registry: true\npolling-interval: 1s"
    params = draw(st.one_of(
        st.just(good), st.just(good + "\npollingInterval: 5s"),
        durations.map(lambda interval: f"type: {kind}\nrepo-type: git\npolling-interval: {json.dumps(interval)}"),
        st.sampled_from(REPO_TYPES_FOR_BATCH).map(
            lambda repo_type: f"type: {kind}\nrepo-type: {repo_type}\nbase-url: http://127.0.0.1:1"),
        light_params_texts))
    image = draw(st.one_of(loopback_images, loopback_images, image_references()))
    src_repo = {"url": draw(st.one_of(loopback_urls, loopback_urls, repository_urls())),
                "revision": draw(maybe(st.sampled_from(["main", "abc1234", "", "feature/x"]))),
                "bundleContainer": draw(st.one_of(st.just({"image": image}), maybe(st.just({"image": image})))),
                "credentials": draw(maybe(st.fixed_dictionaries({"name": st.sampled_from(["none", "x"])})))}
    spec = {"image": image, "build": {"srcRepo": src_repo}, "serving": draw(st.one_of(st.just({}), maybe(st.just({}))))}
    return {"metadata": {"annotations": {SWITCH_ANNOTATION: "enable", PARAMS_ANNOTATION: params}},
            "spec": spec, "status": draw(maybe(statuses()))}


REPO_TYPES_FOR_BATCH = ["git", "gitlab", "github", "gitee"]

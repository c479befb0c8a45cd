"""--format templates (minirun/frontend/template.py) against Go's text/template
and Docker's functions: a table of valid cases with their output, and of
invalid ones with the position the error names.  Pure logic, no root."""
import pytest

from minirun.errors import BadOption
from minirun.frontend import template

DOC = {"Id": "abc123", "Name": "/web", "State": {"Status": "running", "Running": True,
                                                 "ExitCode": 0, "Health": None},
       "Config": {"Env": ["A=1", "B=2"], "Labels": {"k": "v", "team": "a"}, "Cmd": None,
                  "Image": "busybox"},
       "RootFS": {"Layers": ["sha256:1", "sha256:2", "sha256:3"]},
       "Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]},
       "Size": 1024, "Ratio": 0.5, "Html": "<a&b>"}

VALID = [
    ("{{.Name}}", "/web"),
    ("{{ .State.Status }}", "running"),
    ("{{.State.Running}} {{.State.ExitCode}}", "true 0"),
    ("{{.State.Health}}", "<no value>"),            # JSON null
    ("{{.Missing}}", "<no value>"),                 # a map's missing key (Go's default)
    ("{{.Config.Labels}}", "map[k:v team:a]"),
    ("{{.Config.Env}}", "[A=1 B=2]"),
    ("{{len .RootFS.Layers}}", "3"),
    ("{{len .Config.Labels}}", "2"),
    ("{{index .Config.Labels \"team\"}}", "a"),
    ("{{index .RootFS.Layers 1}}", "sha256:2"),
    ("{{(index .Ports \"80/tcp\" 0).HostPort}}", "8080"),
    ("{{range .Config.Env}}{{.}};{{end}}", "A=1;B=2;"),
    ("{{range $i, $e := .Config.Env}}{{$i}}:{{$e}} {{end}}", "0:A=1 1:B=2 "),
    ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}},{{end}}", "k=v,team=a,"),
    ("{{range .Config.Cmd}}x{{else}}none{{end}}", "none"),
    ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
    ("{{if eq .State.Status \"exited\"}}a{{else if eq .State.Status \"running\"}}b{{end}}",
     "b"),
    ("{{if and .State.Running (gt .Size 100)}}big{{end}}", "big"),
    ("{{if not .Config.Cmd}}no cmd{{end}}", "no cmd"),
    ("{{with .Config}}{{.Image}}{{end}}", "busybox"),
    ("{{with .Config.Cmd}}{{.}}{{else}}empty{{end}}", "empty"),
    ("{{$n := .Name}}{{$n}}{{$n}}", "/web/web"),
    ("{{json .Config.Env}}", '["A=1","B=2"]'),
    ("{{json .Config.Labels}}", '{"k":"v","team":"a"}'),
    ("{{json .Html}}", '"\\u003ca\\u0026b\\u003e"'),  # Go's json.Marshal escapes HTML
    ("{{.Name | json}}", '"/web"'),
    ("{{join .Config.Env \",\"}}", "A=1,B=2"),
    ("{{split \"a:b:c\" \":\"}}", "[a b c]"),
    ("{{index (split .Config.Image \"y\") 0}}", "bus"),
    ("{{upper .Name}} {{lower \"ABC\"}} {{title \"hello world\"}}", "/WEB abc Hello World"),
    ("{{println .Name}}", "/web\n"),
    ("{{print .Size .Size}}", "1024 1024"),
    ("{{printf \"%s-%d\" .Name .Size}}", "/web-1024"),
    ("{{.Ratio}}", "0.5"),
    ("{{truncate .Id 3}}", "abc"),
    ("a {{- \" b \" -}} c", "a b c"),
    ("{{/* a comment */}}x", "x"),
    ("plain text", "plain text"),
]


@pytest.mark.parametrize("fmt, want", VALID)
def test_valid_templates(fmt, want):
    assert template.render(fmt, DOC) == want


INVALID = [
    ("{{.State.Status", "1:1", "unclosed action"),
    ("x {{.A}", "1:7", "unexpected"),
    ("{{foo .Name}}", "1:3", 'function "foo" not defined'),
    ("{{if .A}}x", "1:11", "unexpected EOF"),
    ("{{end}}", "1:1", "unexpected {{end}}"),
    ("{{range}}{{end}}", "1:1", "missing value for range"),
    ("a\n{{else}}", "2:1", "unexpected {{else}}"),
    ("{{.A | }}", "1:1", "missing value"),
    ("{{\"unterminated}}", "1:3", "unexpected"),
    ("{{template \"x\"}}", "1:1", "not supported"),
]


@pytest.mark.parametrize("fmt, where, what", INVALID)
def test_invalid_templates_name_the_position(fmt, where, what):
    with pytest.raises(BadOption) as info:
        template.parse(fmt)
    assert info.value.exit_code == 125
    assert f":{where}:" in str(info.value) and what in str(info.value)
    assert str(info.value).startswith("template parsing error: template: ")


EXEC_ERRORS = [
    ("{{.Name.Foo}}", "can't evaluate field Foo in type string"),
    ("{{len .Size}}", "error calling len"),
    ("{{index .RootFS.Layers 9}}", "index out of range"),
    ("{{join .Name \",\"}}", "error calling join"),
    ("{{.Name 1}}", "can't give argument to non-function"),
]


@pytest.mark.parametrize("fmt, what", EXEC_ERRORS)
def test_errors_while_executing(fmt, what):
    with pytest.raises(BadOption, match=what):
        template.render(fmt, DOC)


def test_list_formats_table_and_strict_fields():
    rows = [{"ID": "abc", "Names": "web", "Status": "Up"},
            {"ID": "defabc", "Names": "db", "Status": "Exited (0)"}]
    assert template.render_list("{{.Names}}", rows) == ["web", "db"]
    assert template.render_list("table {{.ID}}\\t{{.Names}}", rows) == [
        "CONTAINER ID   NAMES", "abc            web", "defabc         db"]
    assert template.render_list("table {{.Names}}\t{{.Status}}", rows)[0] == "NAMES     STATUS"
    # a typed list row has no field Foo: an error, not "<no value>" (Docker's rows are structs)
    with pytest.raises(BadOption, match="can't evaluate field Foo"):
        template.render_list("{{.Foo}}", rows)
    assert template.render_list("{{json .}}", rows[:1]) == [
        '{"ID":"abc","Names":"web","Status":"Up"}']


def test_tabwriter_pads_like_docker():
    # a column is as wide as its widest cell plus 3, and at least 10
    assert template.tabwriter(["a\tb", "longer-than-ten\tc"]) == [
        "a" + " " * 17 + "b", "longer-than-ten   c"]
    assert template.tabwriter(["a\tb"]) == ["a" + " " * 9 + "b"]

"""Every invalid-definition check: one problem, at the right line and path, in one sentence."""

import pytest

from relayflow.fdl import DefinitionError, check_flow, load_flow

HEAD = "version: v1\ntype: flow\nsteps:\n"

# (case id, steps YAML under `steps:`, expected path, line, fragment of the message)
CASES = [
    ("empty name", "  - type: pass\n    name: ''\n", "steps[0].name", 5, "must not be empty"),
    (
        "boolean duration",
        "  - type: wait\n    name: w\n    duration: true\n",
        "steps[0].duration",
        6,
        "must be a number of seconds or a path",
    ),
    (
        "fractional maxAttempts",
        "  - type: task\n    name: t\n    action: x:Y\n    retry:\n      - errors: [E]\n        maxAttempts: 1.5\n",
        "steps[0].retry[0].maxAttempts",
        9,
        "must be a whole number, got 1.5",
    ),
    (
        "maxInterval below interval",
        "  - type: task\n    name: t\n    action: x:Y\n    retry:\n      - errors: [E]\n"
        "        intervalSeconds: 10\n        maxIntervalSeconds: 5\n",
        "steps[0].retry[0]",
        8,
        "maxIntervalSeconds (5) is smaller than intervalSeconds (10)",
    ),
    (
        "collection from local",
        "  - type: foreach\n    name: f\n    iterationMapping:\n      collection: $local.names\n"
        "      item: n\n    steps:\n      - type: pass\n        name: p\n",
        "steps[0].iterationMapping.collection",
        7,
        "must read the step's input",
    ),
    (
        "unknown tag in resourceArn",
        "  - type: task\n    name: t\n    resourceArn: !Sub x\n",
        "steps[0].resourceArn",
        6,
        "YAML tag !Sub is not supported",
    ),
    (
        "unknown step type",
        "  - type: tsk\n    name: a\n",
        "steps[0].type",
        4,
        "unknown step type 'tsk'; did you mean 'task'? use one of: choice, fail",
    ),
    ("missing type", "  - name: a\n", "steps[0]", 4, "this step has no 'type'"),
    (
        "step not a mapping",
        "  - pass\n",
        "steps[0]",
        4,
        "must be an object (a mapping), got 'pass'",
    ),
    (
        "missing name",
        "  - type: pass\n",
        "steps[0]",
        4,
        "a pass step needs 'name', which is missing",
    ),
    (
        "unknown attribute",
        "  - type: pass\n    name: a\n    outputMapping: []\n",
        "steps[0].outputMapping",
        6,
        "unknown attribute 'outputMapping'; did you mean 'outputMappings'?",
    ),
    (
        "duplicate sibling",
        "  - type: pass\n    name: a\n  - type: pass\n    name: a\n",
        "steps[1].name",
        7,
        "step name 'a' is already used by steps[0]",
    ),
    (
        "choice goto nowhere",
        "  - type: choice\n    name: c\n    choices:\n      - condition: $.x\n        goto: nowhere\n"
        "  - type: pass\n    name: b\n",
        "steps[0].choices[0].goto",
        8,
        "no sibling step named 'nowhere'; siblings are: c, b",
    ),
    (
        "default goto typo",
        "  - type: choice\n    name: c\n    choices:\n      - condition: $.x\n    default:\n"
        "      goto: fnal\n  - type: succeed\n    name: final\n",
        "steps[0].default.goto",
        9,
        "did you mean 'final'?",
    ),
    (
        "catch goto nowhere",
        "  - type: task\n    name: t\n    resourceArn: acs:fnf:::flow/f\n    catch:\n"
        "      - errors: [FnF.ALL]\n        goto: nowhere\n",
        "steps[0].catch[0].goto",
        9,
        "no sibling step named 'nowhere'; siblings are: t",
    ),
    (
        "goto into a nested list is not a sibling",
        "  - type: choice\n    name: c\n    choices:\n      - condition: $.x\n        steps:\n"
        "          - type: pass\n            name: inner\n    default:\n      goto: inner\n",
        "steps[0].default.goto",
        12,
        "no sibling step named 'inner'",
    ),
    (
        "bad condition",
        "  - type: choice\n    name: c\n    choices:\n      - condition: $.x = 1\n",
        "steps[0].choices[0].condition",
        7,
        "column 5: unexpected character '='",
    ),
    (
        "no choices",
        "  - type: choice\n    name: c\n    choices: []\n",
        "steps[0].choices",
        6,
        "needs at least 1 item(s), got 0",
    ),
    (
        "bad mapping source",
        "  - type: pass\n    name: a\n    inputMappings:\n      - target: x\n        source: $imput.x\n",
        "steps[0].inputMappings[0].source",
        8,
        "unknown root '$imput'",
    ),
    (
        "bad mapping target",
        "  - type: pass\n    name: a\n    inputMappings:\n      - target: a..b\n        source: 1\n",
        "steps[0].inputMappings[0].target",
        7,
        "has an empty key",
    ),
    (
        "mapping without source",
        "  - type: pass\n    name: a\n    outputMappings:\n      - target: x\n",
        "steps[0].outputMappings[0]",
        7,
        "an outputMappings entry needs 'source'",
    ),
    (
        "wait with neither",
        "  - type: wait\n    name: w\n",
        "steps[0]",
        4,
        "a wait step needs exactly one of duration and timestamp; it has neither",
    ),
    (
        "wait with both",
        "  - type: wait\n    name: w\n    duration: 1\n    timestamp: $.t\n",
        "steps[0]",
        4,
        "it has both",
    ),
    (
        "negative duration",
        "  - type: wait\n    name: w\n    duration: -5\n",
        "steps[0].duration",
        6,
        "must not be negative",
    ),
    (
        "bad timestamp",
        "  - type: wait\n    name: w\n    timestamp: tomorrow\n",
        "steps[0].timestamp",
        6,
        "not an RFC 3339 time",
    ),
    (
        "timestamp without zone",
        "  - type: wait\n    name: w\n    timestamp: '2019-05-02T15:04:05'\n",
        "steps[0].timestamp",
        6,
        "has no time zone",
    ),
    (
        "duration word",
        "  - type: wait\n    name: w\n    duration: soon\n",
        "steps[0].duration",
        6,
        "must be a number of seconds or a path",
    ),
    (
        "retry maxAttempts below range",
        "  - type: task\n    name: t\n    action: x:Y\n    retry:\n      - errors: [E]\n"
        "        maxAttempts: -1\n",
        "steps[0].retry[0].maxAttempts",
        9,
        "must be at least 0, got -1",
    ),
    (
        "retry interval above range",
        "  - type: task\n    name: t\n    action: x:Y\n    retry:\n      - errors: [E]\n"
        "        intervalSeconds: 86401\n",
        "steps[0].retry[0].intervalSeconds",
        9,
        "must be at most 86400, got 86401",
    ),
    (
        "retry maxInterval zero",
        "  - type: task\n    name: t\n    action: x:Y\n    retry:\n      - errors: [E]\n"
        "        maxIntervalSeconds: 0\n",
        "steps[0].retry[0].maxIntervalSeconds",
        9,
        "must be at least 1",
    ),
    (
        "retry multiplier below one",
        "  - type: task\n    name: t\n    action: x:Y\n    retry:\n      - errors: [E]\n"
        "        multiplier: 0.5\n",
        "steps[0].retry[0].multiplier",
        9,
        "must be at least 1",
    ),
    (
        "retry without errors",
        "  - type: task\n    name: t\n    action: x:Y\n    retry:\n      - maxAttempts: 1\n",
        "steps[0].retry[0]",
        8,
        "a retry entry needs 'errors', which is missing",
    ),
    (
        "empty error name",
        "  - type: task\n    name: t\n    action: x:Y\n    retry:\n      - errors: ['']\n",
        "steps[0].retry[0].errors",
        8,
        "an error name must not be empty",
    ),
    (
        "catch without goto",
        "  - type: task\n    name: t\n    action: x:Y\n    catch:\n      - errors: [E]\n",
        "steps[0].catch[0]",
        8,
        "a catch entry needs 'goto', which is missing",
    ),
    (
        "catch with no errors",
        "  - type: task\n    name: t\n    action: x:Y\n    catch:\n      - errors: []\n        goto: t\n",
        "steps[0].catch[0].errors",
        8,
        "needs at least 1 item(s)",
    ),
    (
        "task with neither target",
        "  - type: task\n    name: t\n",
        "steps[0]",
        4,
        "a task needs exactly one of resourceArn and action",
    ),
    (
        "task with both targets",
        "  - type: task\n    name: t\n    action: fnf:StartExecution\n"
        "    resourceArn: acs:fnf:::flow/x\n",
        "steps[0]",
        4,
        "it has both",
    ),
    (
        "bad pattern",
        "  - type: task\n    name: t\n    action: x:Y\n    pattern: callback\n",
        "steps[0].pattern",
        7,
        "must be 'requestResponse', 'sync' or 'waitForCallback'",
    ),
    (
        "bad action",
        "  - type: task\n    name: t\n    action: StartExecution\n",
        "steps[0].action",
        6,
        "must look like service:Action",
    ),
    (
        "task timeout zero",
        "  - type: task\n    name: t\n    action: x:Y\n    timeoutSeconds: 0\n",
        "steps[0].timeoutSeconds",
        7,
        "must be at least 1, got 0",
    ),
    (
        "fc arn shape",
        "  - type: task\n    name: t\n    resourceArn: acs:fc:::services/s\n",
        "steps[0].resourceArn",
        6,
        "expected acs:fc:{region}:{account}:services/{service}",
    ),
    (
        "mns arn shape",
        "  - type: task\n    name: t\n    resourceArn: acs:mns:::/queue/q/messages\n",
        "steps[0].resourceArn",
        6,
        "not a valid acs:mns resourceArn",
    ),
    (
        "fnf arn shape",
        "  - type: task\n    name: t\n    resourceArn: acs:fnf:::flows/x\n",
        "steps[0].resourceArn",
        6,
        "expected acs:fnf:::flow/{flow}",
    ),
    (
        "unknown arn service",
        "  - type: task\n    name: t\n    resourceArn: acs:oss:::bucket/x\n",
        "steps[0].resourceArn",
        6,
        "service 'oss' is not one relayflow knows",
    ),
    (
        "not an arn",
        "  - type: task\n    name: t\n    resourceArn: my-function\n",
        "steps[0].resourceArn",
        6,
        "'my-function' is not a resourceArn",
    ),
    (
        "bad !Ref",
        "  - type: task\n    name: t\n    resourceArn: !Ref justone\n",
        "steps[0].resourceArn",
        6,
        "!Ref 'justone' must name a function as service/function",
    ),
    (
        "serviceParams reads $input",
        "  - type: task\n    name: t\n    action: x:Y\n    serviceParams:\n      Input: $input.a\n",
        "steps[0].serviceParams",
        7,
        "must read the mapped input with $ or $.key",
    ),
    (
        "serviceParams not an object",
        "  - type: task\n    name: t\n    action: x:Y\n    serviceParams: [1]\n",
        "steps[0].serviceParams",
        7,
        "serviceParams must be an object",
    ),
    (
        "collection constant",
        "  - type: foreach\n    name: f\n    iterationMapping:\n      collection: names\n"
        "      item: n\n    steps:\n      - type: pass\n        name: p\n",
        "steps[0].iterationMapping.collection",
        7,
        "expected a path such as $.items",
    ),
    (
        "iteration without item",
        "  - type: foreach\n    name: f\n    iterationMapping:\n      collection: $.names\n"
        "    steps:\n      - type: pass\n        name: p\n",
        "steps[0].iterationMapping",
        6,
        "iterationMapping needs 'item', which is missing",
    ),
    (
        "empty foreach",
        "  - type: foreach\n    name: f\n    iterationMapping:\n"
        "      collection: $.a\n      item: x\n    steps: []\n",
        "steps[0].steps",
        9,
        "needs at least 1 item(s)",
    ),
    (
        "empty parallel",
        "  - type: parallel\n    name: p\n    branches: []\n",
        "steps[0].branches",
        6,
        "needs at least 1 item(s)",
    ),
    (
        "too many branches",
        "  - type: parallel\n    name: p\n    branches:\n"
        + "      - steps: [{type: pass, name: x}]\n" * 101,
        "steps[0].branches",
        6,
        "takes at most 100 items, got 101",
    ),
    (
        "nested unknown attribute",
        "  - type: parallel\n    name: p\n    branches:\n      - steps:\n          - type: fail\n"
        "            name: f\n            eror: E\n",
        "steps[0].branches[0].steps[0].eror",
        10,
        "did you mean 'error'?",
    ),
    (
        "end is boolean",
        "  - type: pass\n    name: a\n    end: maybe\n",
        "steps[0].end",
        6,
        "must be true or false, got 'maybe'",
    ),
    ("name is a string", "  - type: pass\n    name: [a]\n", "steps[0].name", 5, "must be a string"),
    (
        "duplicate YAML key",
        "  - type: pass\n    name: a\n    name: b\n",
        "steps[0].name",
        6,
        "key 'name' appears twice in this mapping",
    ),
    (
        "unsupported YAML tag",
        "  - type: pass\n    name: !Sub x\n",
        "steps[0].name",
        5,
        "YAML tag !Sub is not supported",
    ),
]


@pytest.mark.parametrize(
    ("steps", "path", "line", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_invalid_step(steps, path, line, fragment):
    flow, problems = check_flow(HEAD + steps, "flow.yaml")
    assert flow is None
    assert len(problems) == 1, [str(p) for p in problems]
    (problem,) = problems
    text = str(problem)
    assert fragment in problem.message, text
    assert text.startswith(f"flow.yaml:{line}: {path}: "), text
    assert "\n" not in text and "Traceback" not in text


TOP_LEVEL = [
    (
        "bad version",
        "version: v2\ntype: flow\nsteps: [{type: pass, name: a}]\n",
        "version",
        1,
        "must be 'v1', 'v1beta1' or 'v1.0', got 'v2'",
    ),
    (
        "numeric version",
        "version: 1.0\ntype: flow\nsteps: [{type: pass, name: a}]\n",
        "version",
        1,
        "got 1.0",
    ),
    (
        "bad type",
        "version: v1\ntype: workflow\nsteps: [{type: pass, name: a}]\n",
        "type",
        2,
        "must be 'flow'",
    ),
    ("no steps", "version: v1\ntype: flow\n", "", 1, "the flow needs 'steps', which is missing"),
    ("empty steps", "version: v1\ntype: flow\nsteps: []\n", "steps", 3, "needs at least 1 item"),
    (
        "flow timeout above a year",
        "version: v1\ntype: flow\ntimeoutSeconds: 31536001\nsteps: [{type: pass, name: a}]\n",
        "timeoutSeconds",
        3,
        "must be at most 31536000",
    ),
    (
        "flow timeout",
        "version: v1\ntype: flow\ntimeoutSeconds: -1\nsteps: [{type: pass, name: a}]\n",
        "timeoutSeconds",
        3,
        "must be at least 1",
    ),
    (
        "unknown top-level key",
        "version: v1\ntype: flow\nname: x\nsteps: [{type: pass, name: a}]\n",
        "name",
        3,
        "unknown attribute 'name'; the flow takes: version, type, steps",
    ),
    ("not a mapping", "- a\n- b\n", "", 1, "a flow must be a mapping with version, type and steps"),
    ("empty document", "", "", 1, "the document is empty"),
    (
        "yaml syntax",
        "version: v1\ntype: flow\nsteps:\n  - type: pass\n   name: a\n",
        "",
        5,
        "the document does not parse",
    ),
    (
        "json syntax",
        '{"version": "v1",\n "type": "flow",\n "steps": [}\n',
        "",
        3,
        "the document does not parse",
    ),
    ("two documents", "version: v1\n---\nversion: v1\n", "", 2, "more than one YAML document"),
    (
        "nested too deep",
        "version: v1\ntype: flow\nsteps:\n  - type: pass\n    name: a\n    outputMappings:\n"
        "      - target: x\n        source: " + "[" * 60 + "]" * 60 + "\n",
        "steps[0].outputMappings[0].source" + "[0]" * 59,
        8,
        "values nest deeper than the limit of 64 levels",
    ),
    (
        "alias bomb",
        "version: v1\ntype: flow\nx0: &x0 [a, a, a, a, a, a, a, a, a, a]\n"
        + "".join(f"x{i}: &x{i} [" + ", ".join([f"*x{i - 1}"] * 10) + "]\n" for i in range(1, 5))
        + "steps: [{type: pass, name: a}]\n",
        "x3[7]",
        6,
        "this alias brings the values added by aliases past the limit of 10,000",
    ),
    (
        "integer too long",
        "version: v1\ntype: flow\ntimeoutSeconds: "
        + "9" * 4301
        + "\nsteps: [{type: pass, name: a}]\n",
        "timeoutSeconds",
        3,
        "this integer has more than 4,300 digits, the limit for a number",
    ),
    (
        "infinite number",
        "version: v1\ntype: flow\nsteps:\n  - {type: wait, name: w, duration: .inf}\n",
        "steps[0].duration",
        4,
        ".inf is not a finite number, and JSON has no other kind",
    ),
    (
        "json number too large",
        '{"version": "v1", "type": "flow",\n "steps": [{"type": "wait", "name": "w",'
        ' "duration": 1e400}]}',
        "",
        2,
        "1e400 is not a finite number, and JSON has no other kind",
    ),
    (
        "lone surrogate",
        '{"version": "v1", "type": "flow",\n "steps": [{"type": "pass", "name": "\\udc00"}]}',
        "steps[0].name",
        2,
        "U+DC00 is a lone surrogate, not a character, and JSON text cannot hold it",
    ),
]


@pytest.mark.parametrize(
    ("text", "path", "line", "fragment"), [c[1:] for c in TOP_LEVEL], ids=[c[0] for c in TOP_LEVEL]
)
def test_invalid_document(text, path, line, fragment):
    flow, problems = check_flow(text, "f.yaml")
    assert flow is None and len(problems) == 1, [str(p) for p in problems]
    (problem,) = problems
    assert fragment in problem.message, str(problem)
    assert problem.line == line, str(problem)
    assert str(problem).startswith(f"f.yaml:{line}: {path + ': ' if path else ''}"), str(problem)


def test_every_problem_is_reported_at_once():
    text = HEAD + (
        "  - type: tsk\n    name: a\n"
        "  - type: pass\n    name: a\n"
        "  - type: choice\n    name: c\n    choices:\n      - condition: $.x\n        goto: zz\n"
        "  - type: wait\n    name: w\n"
    )
    with pytest.raises(DefinitionError) as err:
        load_flow(text, "many.yaml")
    lines = [p.line for p in err.value.problems]
    assert len(err.value.problems) == 4
    assert lines == sorted(lines)
    assert str(err.value).count("many.yaml:") == 4


def test_problem_to_dict():
    _, problems = check_flow(HEAD + "  - type: pass\n", "x.yaml")
    assert problems[0].to_dict() == {
        "source": "x.yaml",
        "line": 4,
        "path": "steps[0]",
        "message": "a pass step needs 'name', which is missing",
    }


def test_yaml_anchor_cycle_is_a_problem():
    text = "version: v1\ntype: flow\nsteps: &s\n  - type: pass\n    name: a\n    extra: *s\n"
    flow, problems = check_flow(text)
    assert flow is None and problems


def test_json_documents_get_lines_too():
    text = '{\n  "version": "v1",\n  "type": "flow",\n  "steps": [\n    {"type": "pass",\n     "nme": "a"}\n  ]\n}\n'
    _, problems = check_flow(text, "f.json")
    assert [str(p) for p in problems] == [
        "f.json:5: steps[0]: a pass step needs 'name', which is missing",
        "f.json:6: steps[0].nme: unknown attribute 'nme'; did you mean 'name'? a pass step takes: type, name, inputMappings, outputMappings, end",
    ]


def test_json_duplicate_keys_are_reported():
    _, problems = check_flow(
        '{"version": "v1", "version": "v1", "type": "flow", "steps": [{"type": "pass", "name": "a"}]}'
    )
    assert [p.message for p in problems] == ["key 'version' appears twice in this mapping"]

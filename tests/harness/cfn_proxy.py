"""An AWS-behaviour proxy for tests: sits on 127.0.0.1 between barkctl and a moto
server and makes moto's CloudFormation behave like the real service where barkctl's
change-set deploy path depends on it.

    python cfn_proxy.py --upstream http://127.0.0.1:MOTO --port PORT

What it changes (everything else, S3 included, passes through untouched):

- Change sets are the proxy's own: CreateChangeSet compares the submitted template,
  parameters and tags with what moto has deployed and answers Add / Modify / Remove
  changes with `Replacement` and `Details` from the resource schemas' create-only
  properties (`src/diff/create_only.json`); nothing to change gives a FAILED change
  set with AWS's "The submitted information didn't contain changes" reason. A CREATE
  change set leaves a REVIEW_IN_PROGRESS stack. Change sets take a few polls to
  reach CREATE_COMPLETE, and their changes come in pages.
- ExecuteChangeSet applies the change set with moto's CreateStack / UpdateStack (moto's
  own ExecuteChangeSet leaves outputs stale) and then makes the operation
  asynchronous: DescribeStacks answers *_IN_PROGRESS for `in_progress_polls` polls,
  then the terminal status. Per-resource events (real-looking ids, timestamps, the
  operation's ClientRequestToken) appear as the polls go and are served newest first
  in pages of `events_page_size`.
- Faults on request (POST /_proxy/config): throttling (HTTP 400 `Throttling`) on a
  share of polls, HTTP 500s, reset connections, a stack update that fails and rolls
  back (UPDATE_ROLLBACK_COMPLETE, a FAILED resource with its reason, many rollback
  events after it), UPDATE_ROLLBACK_FAILED, a stack stuck IN_PROGRESS, a lag before an
  operation shows (the previous status is answered meanwhile), a conditional
  replacement, and event timestamps skewed against the caller's clock.

Control: POST /_proxy/config (JSON, merged into the config), GET /_proxy/stats.
"""

import argparse
import datetime
import http.client
import http.server
import json
import os
import random
import socket
import struct
import threading
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

NS = "http://cloudformation.amazonaws.com/doc/2010-05-15/"
ET.register_namespace("", NS)
ACCOUNT = "123456789012"
REGION = "us-east-1"
POLLS = ("DescribeStacks", "DescribeStackEvents", "DescribeChangeSet")

CONFIG = {
    # DescribeStacks answers this many times *_IN_PROGRESS after an operation starts.
    "in_progress_polls": 2,
    # DescribeChangeSet answers CREATE_PENDING / CREATE_IN_PROGRESS this many times.
    "change_set_polls": 1,
    # After ExecuteChangeSet, this many DescribeStacks still answer the old status.
    "start_lag_polls": 0,
    "events_page_size": 5,
    "changes_page_size": 4,
    # Seconds added to every event timestamp (negative: the service's clock is behind).
    "clock_skew_seconds": 0,
    # {"rate": 0.3, "actions": [...], "seed": 1}
    "throttle": None,
    # [{"action": "DescribeStacks", "status": 500 | "reset", "times": 2}]
    "errors": [],
    # stack name -> {"outcome": "rollback" | "rollback_failed" | "stuck",
    #                "resource": logical id, "reason": text, "filler": n}
    "faults": {},
    # logical id -> Replacement answered for a Modify of it ("Conditional")
    "replacement": {},
}
STATS = {"requests": {}, "throttled": 0, "errors": 0, "resets": 0, "event_pages": {}}
LOCK = threading.RLock()
RNG = random.Random(1)
UPSTREAM = None
SCHEMAS = {}

# stack name -> state the proxy keeps on top of moto's
STACKS = {}
# change set id -> change set
CHANGE_SETS = {}


def now_iso(offset_ms=0):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
        seconds=CONFIG["clock_skew_seconds"], milliseconds=offset_ms
    )
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


def stack_state(name):
    s = STACKS.get(name)
    if s is None:
        s = {
            "events": [],  # oldest first, revealed
            "pending": [],  # events of the running operation not revealed yet
            "op": None,
            "sticky": None,  # status answered instead of moto's until the next op
            "member": None,  # last DescribeStacks member seen (XML text)
            "review": None,  # stack id while only a CREATE change set exists
            "stack_id": None,
        }
        STACKS[name] = s
    return s


# ---------------------------------------------------------------------------
# upstream calls


def upstream(method, path, body, headers):
    u = urllib.parse.urlparse(UPSTREAM)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, resp.getheaders(), data
    finally:
        conn.close()


def cfn_call(params, auth):
    body = urllib.parse.urlencode(params).encode()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
        "Authorization": auth,
    }
    status, _, data = upstream("POST", "/", body, headers)
    return status, data.decode("utf-8", "replace")


def error_message(xml_text):
    try:
        root = ET.fromstring(xml_text)
        for el in root.iter():
            if el.tag.endswith("Message"):
                return el.text or ""
    except ET.ParseError:
        pass
    return xml_text[:300]


def find(el, name):
    return el.find("{%s}%s" % (NS, name))


def text(el, name):
    child = find(el, name) if el is not None else None
    return child.text if child is not None else None


def describe_member(name, auth):
    status, body = cfn_call(
        {"Action": "DescribeStacks", "Version": "2010-05-15", "StackName": name}, auth
    )
    if status != 200:
        return None
    root = ET.fromstring(body)
    for m in root.iter("{%s}member" % NS):
        if text(m, "StackName") == name:
            return m
    return None


def members_of(m, list_name, key, value):
    out = {}
    lst = find(m, list_name) if m is not None else None
    if lst is None:
        return out
    for p in lst:
        out[text(p, key)] = text(p, value) or ""
    return out


def template_of(name, auth):
    status, body = cfn_call(
        {"Action": "GetTemplate", "Version": "2010-05-15", "StackName": name, "TemplateStage": "Original"},
        auth,
    )
    if status != 200:
        return None
    root = ET.fromstring(body)
    for el in root.iter():
        if el.tag.endswith("TemplateBody"):
            return parse_template(el.text or "")
    return None


def parse_template(body):
    try:
        return json.loads(body)
    except ValueError:
        return None


def fetch_url(url):
    # https://s3[.region].amazonaws.com/bucket/key -> the emulator's S3
    path = urllib.parse.urlparse(url).path
    status, _, data = upstream("GET", path, None, {})
    return data.decode() if status == 200 else None


def form_list(form, prefix, fields):
    out = []
    n = 1
    while True:
        item = {}
        for f in fields:
            v = form.get("%s.member.%d.%s" % (prefix, n, f))
            if v is not None:
                item[f] = v
        if not item:
            return out
        out.append(item)
        n += 1


# ---------------------------------------------------------------------------
# responses


def xml_response(action, inner):
    return (
        '<%sResponse xmlns="%s"><%sResult>%s</%sResult>'
        "<ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata></%sResponse>"
        % (action, NS, action, inner, action, uuid.uuid4(), action)
    ).encode()


def xml_error(code, message, sender=True):
    return (
        '<ErrorResponse xmlns="%s"><Error><Type>%s</Type><Code>%s</Code><Message>%s</Message>'
        "</Error><RequestId>%s</RequestId></ErrorResponse>"
        % (NS, "Sender" if sender else "Receiver", code, escape(message), uuid.uuid4())
    ).encode()


def el(name, value):
    if value is None:
        return ""
    return "<%s>%s</%s>" % (name, escape(str(value)), name)


# ---------------------------------------------------------------------------
# change sets


def references(value, params):
    """Parameters a resource's JSON refers to (Ref or ${Name} in Fn::Sub)."""
    found = set()

    def walk(v):
        if isinstance(v, dict):
            for k, x in v.items():
                if k == "Ref" and isinstance(x, str) and x in params:
                    found.add(x)
                elif k == "Fn::Sub":
                    s = x if isinstance(x, str) else (x[0] if isinstance(x, list) and x else "")
                    if isinstance(s, str):
                        for p in params:
                            if "${%s}" % p in s:
                                found.add(p)
                    walk(x)
                else:
                    walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(value)
    return found


def compute_changes(old, new, old_params, new_params):
    old_r = (old or {}).get("Resources", {}) or {}
    new_r = (new or {}).get("Resources", {}) or {}
    changed_params = {k for k in set(old_params) | set(new_params) if old_params.get(k) != new_params.get(k)}
    changes = []
    for lid, res in new_r.items():
        rtype = res.get("Type", "")
        if lid not in old_r:
            changes.append({"Action": "Add", "LogicalResourceId": lid, "ResourceType": rtype})
            continue
        before = old_r[lid]
        schema = SCHEMAS.get(rtype, {"create_only": [], "conditional": []})
        props_old = before.get("Properties", {}) or {}
        props_new = res.get("Properties", {}) or {}
        details = []
        for p in sorted(set(props_old) | set(props_new)):
            static = props_old.get(p) != props_new.get(p)
            dynamic = bool(references(props_new.get(p), changed_params))
            if not static and not dynamic:
                continue
            if p in schema["create_only"]:
                rec = "Always"
            elif p in schema["conditional"]:
                rec = "Conditionally"
            else:
                rec = "Never"
            details.append(
                {
                    "Name": p,
                    "RequiresRecreation": rec,
                    "Evaluation": "Static" if static else "Dynamic",
                    "ChangeSource": "DirectModification" if static else "ParameterReference",
                }
            )
        other = {k: v for k, v in res.items() if k != "Properties"} != {
            k: v for k, v in before.items() if k != "Properties"
        }
        if not details and not other:
            continue
        if before.get("Type") != rtype:
            replacement = "True"
        elif any(d["RequiresRecreation"] == "Always" and d["Evaluation"] == "Static" for d in details):
            replacement = "True"
        elif any(d["RequiresRecreation"] != "Never" for d in details):
            replacement = "Conditional"
        else:
            replacement = "False"
        replacement = CONFIG["replacement"].get(lid, replacement)
        changes.append(
            {
                "Action": "Modify",
                "LogicalResourceId": lid,
                "ResourceType": rtype,
                "Replacement": replacement,
                "Details": details,
            }
        )
    for lid, res in old_r.items():
        if lid not in new_r:
            changes.append({"Action": "Remove", "LogicalResourceId": lid, "ResourceType": res.get("Type", "")})
    return changes


def create_change_set(form, auth):
    name = form.get("StackName", "")
    cs_name = form.get("ChangeSetName", "")
    cs_type = form.get("ChangeSetType", "UPDATE")
    body = form.get("TemplateBody")
    if body is None and form.get("TemplateURL"):
        body = fetch_url(form["TemplateURL"])
        if body is None:
            return 400, xml_error("ValidationError", "TemplateURL must reference a valid S3 object to which you have access.")
    new = parse_template(body or "")
    if new is None:
        return 400, xml_error("ValidationError", "Template format error: JSON not well-formed.")
    params = {p["ParameterKey"]: p.get("ParameterValue", "") for p in form_list(form, "Parameters", ["ParameterKey", "ParameterValue"])}
    tags = {t["Key"]: t.get("Value", "") for t in form_list(form, "Tags", ["Key", "Value"])}
    with LOCK:
        st = stack_state(name)
        member = describe_member(name, auth)
        if cs_type == "CREATE":
            if member is not None and text(member, "StackStatus") != "REVIEW_IN_PROGRESS":
                return 400, xml_error("AlreadyExistsException", "Stack [%s] already exists" % name)
            old, old_params, old_tags = None, {}, {}
            if st["review"] is None:
                st["review"] = "arn:aws:cloudformation:%s:%s:stack/%s/%s" % (REGION, ACCOUNT, name, uuid.uuid4())
                st["events"] = []
                st["sticky"] = None
                add_events(st, name, st["review"], [("stack", "REVIEW_IN_PROGRESS", "User Initiated")], None, reveal=True)
            stack_id = st["review"]
        else:
            if member is None:
                return 400, xml_error("ValidationError", "Stack [%s] does not exist" % name)
            status = effective_status(st, text(member, "StackStatus"))
            if status.endswith("_IN_PROGRESS") or status == "UPDATE_ROLLBACK_FAILED":
                return 400, xml_error("ValidationError", "Stack:%s is in %s state and can not be updated." % (text(member, "StackId"), status))
            old = template_of(name, auth)
            old_params = members_of(member, "Parameters", "ParameterKey", "ParameterValue")
            old_tags = members_of(member, "Tags", "Key", "Value")
            stack_id = text(member, "StackId")
        changes = compute_changes(old, new, old_params, params)
        cs_id = "arn:aws:cloudformation:%s:%s:changeSet/%s/%s" % (REGION, ACCOUNT, cs_name, uuid.uuid4())
        empty = not changes and old == new and old_params == params and old_tags == tags
        CHANGE_SETS[cs_id] = {
            "id": cs_id,
            "name": cs_name,
            "stack": name,
            "stack_id": stack_id,
            "type": cs_type,
            "form": form,
            "body": body,
            "changes": changes,
            "polls": CONFIG["change_set_polls"],
            "final": "FAILED" if empty else "CREATE_COMPLETE",
            "reason": "The submitted information didn't contain changes. Submit different information to create a change set." if empty else None,
            "execution": "UNAVAILABLE" if empty else "AVAILABLE",
            "parameters": params,
            "created": now_iso(),
        }
    return 200, xml_response("CreateChangeSet", el("Id", cs_id) + el("StackId", stack_id))


def lookup_change_set(form):
    ref = form.get("ChangeSetName", "")
    if ref in CHANGE_SETS:
        return CHANGE_SETS[ref]
    for cs in CHANGE_SETS.values():
        if cs["name"] == ref and cs["stack"] == form.get("StackName"):
            return cs
    return None


def describe_change_set(form):
    with LOCK:
        cs = lookup_change_set(form)
        if cs is None:
            return 400, xml_error("ChangeSetNotFound", "ChangeSet [%s] does not exist" % form.get("ChangeSetName"))
        if cs["polls"] > 0:
            cs["polls"] -= 1
            status = "CREATE_PENDING" if cs["polls"] > 0 else "CREATE_IN_PROGRESS"
            execution = "UNAVAILABLE"
        else:
            status, execution = cs["final"], cs["execution"]
        start = int(form.get("NextToken") or 0)
        size = CONFIG["changes_page_size"]
        page = cs["changes"][start : start + size] if status == "CREATE_COMPLETE" else []
        more = status == "CREATE_COMPLETE" and start + size < len(cs["changes"])
        inner = (
            el("ChangeSetName", cs["name"])
            + el("ChangeSetId", cs["id"])
            + el("StackId", cs["stack_id"])
            + el("StackName", cs["stack"])
            + el("CreationTime", cs["created"])
            + el("Status", status)
            + el("ExecutionStatus", execution)
            + (el("StatusReason", cs["reason"]) if status == "FAILED" else "")
            + "<Parameters>"
            + "".join(
                "<member>%s%s</member>" % (el("ParameterKey", k), el("ParameterValue", v))
                for k, v in sorted(cs["parameters"].items())
            )
            + "</Parameters><Changes>"
            + "".join(change_xml(c) for c in page)
            + "</Changes>"
            + (el("NextToken", start + size) if more else "")
        )
    return 200, xml_response("DescribeChangeSet", inner)


def change_xml(c):
    details = "".join(
        "<member><Target><Attribute>Properties</Attribute>%s%s</Target>%s%s</member>"
        % (el("Name", d["Name"]), el("RequiresRecreation", d["RequiresRecreation"]), el("Evaluation", d["Evaluation"]), el("ChangeSource", d["ChangeSource"]))
        for d in c.get("Details", [])
    )
    return (
        "<member><Type>Resource</Type><ResourceChange>%s%s%s%s<Scope><member>Properties</member></Scope><Details>%s</Details></ResourceChange></member>"
        % (
            el("Action", c["Action"]),
            el("LogicalResourceId", c["LogicalResourceId"]),
            el("ResourceType", c["ResourceType"]),
            el("Replacement", c.get("Replacement")),
            details,
        )
    )


def delete_change_set(form):
    with LOCK:
        cs = lookup_change_set(form)
        if cs is None:
            return 400, xml_error("ChangeSetNotFound", "ChangeSet [%s] does not exist" % form.get("ChangeSetName"))
        del CHANGE_SETS[cs["id"]]
    return 200, xml_response("DeleteChangeSet", "")


def execute_change_set(form, auth):
    token = form.get("ClientRequestToken")
    with LOCK:
        cs = lookup_change_set(form)
        if cs is None:
            return 400, xml_error("ChangeSetNotFound", "ChangeSet [%s] does not exist" % form.get("ChangeSetName"))
        if cs["polls"] > 0 or cs["final"] != "CREATE_COMPLETE":
            return 400, xml_error("InvalidChangeSetStatus", "ChangeSet [%s] cannot be executed in its current status of [%s]" % (cs["id"], cs["final"]))
        name = cs["stack"]
        st = stack_state(name)
        fault = CONFIG["faults"].get(name) or {}
        create = cs["type"] == "CREATE"
        params = {"Version": "2010-05-15", "Action": "CreateStack" if create else "UpdateStack"}
        for k, v in cs["form"].items():
            if k.startswith(("StackName", "Parameters.", "Tags.", "Capabilities.")):
                params[k] = v
        params["TemplateBody"] = cs["body"]
        del CHANGE_SETS[cs["id"]]
        prev = effective_status(st, text(st["member_el"], "StackStatus") if st.get("member_el") is not None else None)
        outcome = fault.get("outcome")
        error = None
        if outcome is None or outcome == "stuck":
            status, body = cfn_call(params, auth)
            if status != 200:
                error = error_message(body)
                if "No updates are to be performed" in error:
                    error = None
        start_operation(st, name, cs, token, create, outcome, fault, error, prev)
    return 200, xml_response("ExecuteChangeSet", "")


def still_stuck(op):
    # A stuck operation moves on once the test drops the fault.
    if op["stuck"] and (CONFIG["faults"].get(op.get("name")) or {}).get("outcome") != "stuck":
        op["stuck"] = False
    return op["stuck"]


def effective_status(st, moto_status):
    op = st["op"]
    if op is not None:
        still_stuck(op)
        if op["lag"] > 0:
            return op["prev"] or moto_status or "REVIEW_IN_PROGRESS"
        if op["polls"] > 0 or op["stuck"]:
            return op["running"]
        return op["final"]
    if st["sticky"]:
        return st["sticky"]
    if moto_status is None and st["review"]:
        return "REVIEW_IN_PROGRESS"
    return moto_status


def add_events(st, name, stack_id, items, token, reveal=False):
    """items: (logical id or "stack", status, reason, type)"""
    out = []
    for i, item in enumerate(items):
        lid, status, reason = item[0], item[1], item[2]
        rtype = item[3] if len(item) > 3 else "AWS::CloudFormation::Stack"
        ts = now_iso(i)
        is_stack = lid == "stack"
        ev = {
            "StackId": stack_id,
            "EventId": str(uuid.uuid4()) if is_stack else "%s-%s-%s" % (lid, status, ts),
            "StackName": name,
            "LogicalResourceId": name if is_stack else lid,
            "PhysicalResourceId": stack_id if is_stack else "",
            "ResourceType": rtype,
            "Timestamp": ts,
            "ResourceStatus": status,
            "ResourceStatusReason": reason,
            "ClientRequestToken": token,
        }
        out.append(ev)
    if reveal:
        st["events"].extend(out)
    else:
        st["pending"].extend(out)


def start_operation(st, name, cs, token, create, outcome, fault, error, prev):
    verb = "CREATE" if create else "UPDATE"
    stack_id = cs["stack_id"]
    st["stack_id"] = stack_id
    items = [("stack", verb + "_IN_PROGRESS", "User Initiated")]
    changes = cs["changes"]
    if outcome in ("rollback", "rollback_failed") or error:
        failing = fault.get("resource") or (changes[0]["LogicalResourceId"] if changes else name)
        reason = fault.get("reason") or error or "Resource handler returned message: failed"
        rtype = next((c["ResourceType"] for c in changes if c["LogicalResourceId"] == failing), "AWS::CloudFormation::Stack")
        for c in changes:
            items.append((c["LogicalResourceId"], verb + "_IN_PROGRESS", None, c["ResourceType"]))
        items.append((failing, verb + "_FAILED", reason, rtype))
        for c in changes:
            if c["LogicalResourceId"] != failing:
                items.append((c["LogicalResourceId"], verb + "_FAILED", "Resource %s cancelled" % verb.lower(), c["ResourceType"]))
        rb = "ROLLBACK" if create else "UPDATE_ROLLBACK"
        items.append(("stack", rb + "_IN_PROGRESS", "The following resource(s) failed to %s: [%s]. " % (verb.lower(), failing)))
        for i in range(int(fault.get("filler", 0))):
            lid = "Rollback%02d" % i
            items.append((lid, "UPDATE_IN_PROGRESS", None, "AWS::CloudFormation::WaitConditionHandle"))
            items.append((lid, "UPDATE_COMPLETE", None, "AWS::CloudFormation::WaitConditionHandle"))
        if outcome == "rollback_failed":
            items.append(("stack", "UPDATE_ROLLBACK_FAILED", "The following resource(s) failed to update: [%s]." % failing))
            final = "UPDATE_ROLLBACK_FAILED"
        else:
            if not create:
                items.append(("stack", "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", None))
            final = rb + "_COMPLETE"
            items.append(("stack", final, None))
    else:
        for c in changes:
            if c["Action"] == "Remove":
                continue
            v = "CREATE" if c["Action"] == "Add" else "UPDATE"
            items.append((c["LogicalResourceId"], v + "_IN_PROGRESS", None, c["ResourceType"]))
            items.append((c["LogicalResourceId"], v + "_IN_PROGRESS", "Resource creation Initiated" if v == "CREATE" else None, c["ResourceType"]))
            items.append((c["LogicalResourceId"], v + "_COMPLETE", None, c["ResourceType"]))
        removed = [c for c in changes if c["Action"] == "Remove"]
        if not create:
            items.append(("stack", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", None))
        for c in removed:
            items.append((c["LogicalResourceId"], "DELETE_IN_PROGRESS", None, c["ResourceType"]))
            items.append((c["LogicalResourceId"], "DELETE_COMPLETE", None, c["ResourceType"]))
        final = verb + "_COMPLETE"
        items.append(("stack", final, None))
    st["pending"] = []
    add_events(st, name, stack_id, items, token)
    st["review"] = None if not create else st["review"]
    st["sticky"] = None
    st["op"] = {
        "polls": int(fault.get("polls", CONFIG["in_progress_polls"])),
        "lag": int(CONFIG["start_lag_polls"]),
        "stuck": outcome == "stuck" and fault.get("polls") is None,
        "name": name,
        "running": verb + "_IN_PROGRESS",
        "final": final,
        "prev": prev,
        "reveal_at_end": bool(fault.get("reveal_at_end")),
        "total": len(st["pending"]),
    }


def advance(st):
    """One poll of a running operation: reveal some events, count down."""
    op = st["op"]
    if op is None:
        return
    if op["lag"] > 0:
        op["lag"] -= 1
        return
    if still_stuck(op):
        if len(st["pending"]) > 1 and not op["reveal_at_end"]:
            st["events"].append(st["pending"].pop(0))
        return
    if op["polls"] > 0:
        op["polls"] -= 1
        if not op["reveal_at_end"] and op["polls"] > 0:
            share = max(1, op["total"] // (op["polls"] + 1))
            keep = len(st["pending"]) - 1  # the terminal event waits for the end
            take = min(share, max(0, keep))
            st["events"].extend(st["pending"][:take])
            del st["pending"][:take]
        return
    st["events"].extend(st["pending"])
    st["pending"] = []
    st["sticky"] = op["final"] if op["final"] not in ("CREATE_COMPLETE", "UPDATE_COMPLETE") else None
    if op["final"] == "DELETE_COMPLETE":
        st["sticky"] = None
        st["review"] = None
    st["op"] = None


def describe_stacks(form, auth, raw_body, headers):
    name = form.get("StackName")
    status, _, data = upstream("POST", "/", raw_body, headers)
    with LOCK:
        try:
            return describe_stacks_answer(name, status, data)
        finally:
            # The answer shows the state before this poll; the poll moves it on.
            if name and name in STACKS:
                advance(STACKS[name])


def describe_stacks_answer(name, status, data):
    if status != 200:
        st = STACKS.get(name) if name else None
        if st is None:
            return status, data
        op = st["op"]
        if op is not None and op["running"] == "DELETE_IN_PROGRESS" and st["member"]:
            eff = effective_status(st, None)
            if eff != "DELETE_COMPLETE":
                return 200, rewrap_member(st["member"], eff)
        if st["review"] and op is None:
            return 200, review_member(name, st["review"])
        return status, data
    root = ET.fromstring(data)
    for m in root.iter("{%s}member" % NS):
        sname = text(m, "StackName")
        if sname is None or find(m, "StackStatus") is None or sname not in STACKS:
            continue
        st = STACKS[sname]
        st["member_el"] = m
        find(m, "StackStatus").text = effective_status(st, text(m, "StackStatus"))
        st["member"] = ET.tostring(m, encoding="unicode")
    return 200, ET.tostring(root, encoding="utf-8", xml_declaration=False)


def rewrap_member(member_xml, status):
    m = ET.fromstring(member_xml)
    find(m, "StackStatus").text = status
    inner = "<Stacks>%s</Stacks>" % ET.tostring(m, encoding="unicode")
    return xml_response("DescribeStacks", inner)


def review_member(name, stack_id):
    inner = "<Stacks><member>%s%s%s%s</member></Stacks>" % (
        el("StackId", stack_id),
        el("StackName", name),
        el("CreationTime", now_iso()),
        el("StackStatus", "REVIEW_IN_PROGRESS"),
    )
    return xml_response("DescribeStacks", inner)


def describe_stack_events(form, raw_body, headers):
    name = form.get("StackName", "")
    with LOCK:
        st = STACKS.get(name)
        if st is None or not (st["events"] or st["pending"]):
            pass
        else:
            if st["op"] is not None and st["op"]["lag"] == 0 and not st["op"]["stuck"]:
                pass
            events = list(reversed(st["events"]))
            start = int(form.get("NextToken") or 0)
            size = CONFIG["events_page_size"]
            page = events[start : start + size]
            page_no = start // size + 1
            STATS["event_pages"][name] = max(STATS["event_pages"].get(name, 0), page_no)
            inner = "<StackEvents>%s</StackEvents>%s" % (
                "".join(event_xml(e) for e in page),
                el("NextToken", start + size) if start + size < len(events) else "",
            )
            return 200, xml_response("DescribeStackEvents", inner)
    status, _, data = upstream("POST", "/", raw_body, headers)
    return status, data


def event_xml(e):
    return "<member>%s</member>" % "".join(
        el(k, e[k])
        for k in (
            "StackId",
            "EventId",
            "StackName",
            "LogicalResourceId",
            "PhysicalResourceId",
            "ResourceType",
            "Timestamp",
            "ResourceStatus",
            "ResourceStatusReason",
            "ClientRequestToken",
        )
        if e.get(k)
    )


def delete_stack(form, auth, raw_body, headers):
    name = form.get("StackName", "")
    token = form.get("ClientRequestToken")
    with LOCK:
        st = stack_state(name)
        if st["review"] and describe_member(name, auth) is None:
            st["review"] = None
            st["events"] = []
            st["op"] = None
            st["sticky"] = None
            return 200, xml_response("DeleteStack", "")
        member = describe_member(name, auth)
        if member is None:
            return 200, xml_response("DeleteStack", "")
        st["member"] = ET.tostring(member, encoding="unicode")
        stack_id = text(member, "StackId")
        template = template_of(name, auth) or {}
        upstream("POST", "/", raw_body, headers)
        items = [("stack", "DELETE_IN_PROGRESS", "User Initiated")]
        for lid, res in (template.get("Resources") or {}).items():
            items.append((lid, "DELETE_IN_PROGRESS", None, res.get("Type", "")))
            items.append((lid, "DELETE_COMPLETE", None, res.get("Type", "")))
        items.append(("stack", "DELETE_COMPLETE", None))
        st["pending"] = []
        add_events(st, name, stack_id, items, token)
        st["sticky"] = None
        st["op"] = {
            "polls": CONFIG["in_progress_polls"],
            "lag": 0,
            "stuck": False,
            "running": "DELETE_IN_PROGRESS",
            "final": "DELETE_COMPLETE",
            "prev": None,
            "reveal_at_end": False,
            "total": len(st["pending"]),
        }
    return 200, xml_response("DeleteStack", "")


# ---------------------------------------------------------------------------
# the HTTP side


def injected_fault(action):
    """None, ("status", code, body) or ("reset",)."""
    with LOCK:
        for e in CONFIG["errors"]:
            if e.get("action") in (action, "*") and e.get("times", 0) > 0:
                e["times"] -= 1
                if e.get("status") == "reset":
                    STATS["resets"] += 1
                    return ("reset",)
                STATS["errors"] += 1
                return ("status", int(e.get("status", 500)), xml_error("InternalFailure", "injected server error", sender=False))
        t = CONFIG["throttle"]
        if t and action in t.get("actions", POLLS) and RNG.random() < float(t.get("rate", 0)):
            STATS["throttled"] += 1
            return ("status", 400, xml_error("Throttling", "Rate exceeded"))
    return None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                line = self.rfile.readline().strip()
                n = int(line.split(b";")[0], 16)
                if n == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(n))
                self.rfile.readline()
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def send(self, status, body, headers=None):
        self.send_response(status)
        sent = set()
        for k, v in headers or [("Content-Type", "text/xml")]:
            if k.lower() in ("content-length", "transfer-encoding", "connection", "server", "date"):
                continue
            self.send_header(k, v)
            sent.add(k.lower())
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def reset(self):
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def forward(self, body):
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("transfer-encoding",)}
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            headers["Content-Length"] = str(len(body))
        status, resp_headers, data = upstream(self.command, self.path, body if body else None, headers)
        self.send(status, data, resp_headers)

    def do_GET(self):
        if self.path.startswith("/_proxy/stats"):
            with LOCK:
                body = json.dumps(STATS).encode()
            return self.send(200, body, [("Content-Type", "application/json")])
        self.forward(self.read_body())

    def do_HEAD(self):
        headers = dict(self.headers.items())
        status, resp_headers, _ = upstream("HEAD", self.path, None, headers)
        self.send_response(status)
        for k, v in resp_headers:
            if k.lower() not in ("transfer-encoding", "connection", "server", "date"):
                self.send_header(k, v)
        self.end_headers()

    def do_PUT(self):
        self.forward(self.read_body())

    def do_DELETE(self):
        self.forward(self.read_body())

    def do_POST(self):
        body = self.read_body()
        if self.path.startswith("/_proxy/config"):
            update = json.loads(body or b"{}")
            with LOCK:
                CONFIG.update(update)
                if "throttle" in update and update["throttle"]:
                    RNG.seed(update["throttle"].get("seed", 1))
            return self.send(200, b"{}", [("Content-Type", "application/json")])
        auth = self.headers.get("Authorization", "")
        if "/cloudformation/" not in auth:
            return self.forward(body)
        form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode(), keep_blank_values=True).items()}
        action = form.get("Action", "")
        with LOCK:
            STATS["requests"][action] = STATS["requests"].get(action, 0) + 1
        fault = injected_fault(action)
        if fault is not None:
            if fault[0] == "reset":
                return self.reset()
            return self.send(fault[1], fault[2])
        headers = {k: v for k, v in self.headers.items()}
        if action == "CreateChangeSet":
            status, data = create_change_set(form, auth)
        elif action == "DescribeChangeSet":
            status, data = describe_change_set(form)
        elif action == "DeleteChangeSet":
            status, data = delete_change_set(form)
        elif action == "ExecuteChangeSet":
            status, data = execute_change_set(form, auth)
        elif action == "DescribeStacks":
            status, data = describe_stacks(form, auth, body, headers)
        elif action == "DescribeStackEvents":
            status, data = describe_stack_events(form, body, headers)
        elif action == "DeleteStack":
            status, data = delete_stack(form, auth, body, headers)
        else:
            return self.forward(body)
        self.send(status, data)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64


def main():
    global UPSTREAM, SCHEMAS
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--schemas", default=os.path.join(os.path.dirname(__file__), "..", "..", "src", "diff", "create_only.json"))
    args = ap.parse_args()
    UPSTREAM = args.upstream
    with open(args.schemas) as f:
        SCHEMAS = json.load(f)["types"]
    server = Server(("127.0.0.1", args.port), Handler)
    print("cfn proxy on 127.0.0.1:%d -> %s" % (args.port, UPSTREAM), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

//! Bad input: every case exits 2 with a message naming the file (and the line
//! and key where they are known), and never panics. Also the happy paths of
//! synth, graph and validate on the small fixture project.

use crate::harness::{copy_project, fixture, run, write};

fn minimal() -> (tempfile::TempDir, std::path::PathBuf) {
    copy_project(&fixture("minimal"))
}

#[test]
fn cycle_is_reported_with_its_full_path() {
    let (_t, dir) = minimal();
    write(
        &dir.join("stacks/store.yaml"),
        "template: store.yaml.hbs\ndepends_on: [api]\nparams:\n  table_suffix: x\n",
    );
    let r = run(&dir, &["graph"]);
    r.assert_invalid(&["dependency cycle: api -> store -> api"]);
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let (_t, dir) = minimal();
    write(
        &dir.join("stacks/api.yaml"),
        "template: api.yaml.hbs\nneeds:\n  store: [TableName, TableArn]\nparams:\n  queue_delay: 0\nstage:\n  prod: {}\n",
    );
    let r = run(&dir, &["validate"]);
    r.assert_invalid(&[
        "stacks/api.yaml:6:",
        "unknown field `stage`",
        "expected one of",
    ]);
}

#[test]
fn unknown_key_in_a_nested_mapping_names_its_key_path() {
    let (_t, dir) = minimal();
    write(
        &dir.join("stacks/project.yaml"),
        "app: mini\nstages:\n  dev:\n    regoin: eu-west-1\n",
    );
    let r = run(&dir, &["validate"]);
    r.assert_invalid(&[
        "stacks/project.yaml:4:",
        "at `stages.dev.regoin`: unknown field `regoin`",
    ]);
}

#[test]
fn yaml_syntax_error_names_file_and_line() {
    let (_t, dir) = minimal();
    write(
        &dir.join("stacks/store.yaml"),
        "template: store.yaml.hbs\nparams:\n  table_suffix: [a, b\n  other: 1\n",
    );
    let r = run(&dir, &["synth", "--stage", "dev"]);
    r.assert_invalid(&["stacks/store.yaml:4:"]);
}

#[test]
fn wrong_type_names_the_key() {
    let (_t, dir) = minimal();
    write(
        &dir.join("stacks/api.yaml"),
        "template: api.yaml.hbs\nneeds:\n  store: TableName\n",
    );
    let r = run(&dir, &["validate"]);
    r.assert_invalid(&["stacks/api.yaml:3:", "needs.store", "expected a sequence"]);
}

#[test]
fn needs_naming_a_missing_output_names_the_stack_file_and_line() {
    let (_t, dir) = minimal();
    write(
        &dir.join("stacks/api.yaml"),
        "template: api.yaml.hbs\nneeds:\n  store:\n    - TableName\n    - TableArn\n    - StreamArn\nparams:\n  queue_delay: 0\n",
    );
    let r = run(&dir, &["synth", "--stage", "dev"]);
    r.assert_invalid(&[
        "stacks/api.yaml:6",
        "needs output `StreamArn` of `store`",
        "templates/store.yaml.hbs",
        "declares: TableName, TableArn",
    ]);
}

#[test]
fn needs_naming_a_missing_stack() {
    let (_t, dir) = minimal();
    write(
        &dir.join("stacks/api.yaml"),
        "template: api.yaml.hbs\nneeds:\n  store: [TableName, TableArn]\n  auth: [UserPoolId]\n",
    );
    let r = run(&dir, &["validate"]);
    r.assert_invalid(&["stacks/api.yaml:4", "needs unknown stack `auth`"]);
}

#[test]
fn undefined_template_variable_names_template_and_line() {
    let (_t, dir) = minimal();
    let path = dir.join("templates/store.yaml.hbs");
    let text = std::fs::read_to_string(&path).unwrap();
    write(
        &path,
        &text.replace("{{params.retention_days}}", "{{params.retention}}"),
    );
    let r = run(&dir, &["synth", "--stage", "dev"]);
    r.assert_invalid(&[
        "templates/store.yaml.hbs:19",
        "undefined variable `params.retention`",
    ]);
}

#[test]
fn ref_to_undeclared_name_names_template_key_and_line() {
    let (_t, dir) = minimal();
    let path = dir.join("templates/store.yaml.hbs");
    let text = std::fs::read_to_string(&path).unwrap();
    write(
        &path,
        &text.replace("Value: !Ref Table\n", "Value: !Ref Tabel\n"),
    );
    let r = run(&dir, &["validate"]);
    r.assert_invalid(&[
        "templates/store.yaml.hbs:22",
        "at `Outputs.TableName.Value.Ref`",
        "`Ref` to undeclared name `Tabel`",
    ]);
}

#[test]
fn getatt_on_undeclared_resource() {
    let (_t, dir) = minimal();
    let path = dir.join("templates/store.yaml.hbs");
    let text = std::fs::read_to_string(&path).unwrap();
    write(
        &path,
        &text.replace("!GetAtt Table.Arn", "!GetAtt Tables.Arn"),
    );
    let r = run(&dir, &["validate"]);
    r.assert_invalid(&[
        "templates/store.yaml.hbs:24",
        "`Fn::GetAtt` on undeclared resource `Tables`",
    ]);
}

#[test]
fn handlebars_syntax_error_names_template_and_line() {
    let (_t, dir) = minimal();
    let path = dir.join("templates/api.yaml.hbs");
    let text = std::fs::read_to_string(&path).unwrap();
    write(
        &path,
        &text.replace("{{description}}", "{{#if description}}"),
    );
    let r = run(&dir, &["validate"]);
    r.assert_invalid(&["templates/api.yaml.hbs"]);
}

#[test]
fn rendered_yaml_that_does_not_parse_shows_the_line() {
    let (_t, dir) = minimal();
    let path = dir.join("templates/store.yaml.hbs");
    let text = std::fs::read_to_string(&path).unwrap();
    write(
        &path,
        &text.replace(
            "BillingMode: PAY_PER_REQUEST",
            "BillingMode: [PAY_PER_REQUEST",
        ),
    );
    let r = run(&dir, &["validate"]);
    r.assert_invalid(&[
        "templates/store.yaml.hbs",
        "not valid YAML",
        "rendered line",
    ]);
}

#[test]
fn function_whose_crate_does_not_exist() {
    let (_t, dir) = minimal();
    write(
        &dir.join("stacks/store.yaml"),
        "template: store.yaml.hbs\nparams:\n  table_suffix: x\nfunctions:\n  reader:\n    crate: store-reader\n",
    );
    let r = run(&dir, &["validate"]);
    r.assert_invalid(&[
        "stacks/store.yaml:6",
        "functions.reader.crate",
        "crate `store-reader` does not exist",
    ]);
}

#[test]
fn unknown_stage_and_unknown_stack_on_the_command_line() {
    let (_t, dir) = minimal();
    run(&dir, &["synth", "--stage", "qa"]).assert_invalid(&["unknown stage `qa`", "dev, prod"]);
    run(&dir, &["synth", "--stage", "dev", "nope"])
        .assert_invalid(&["unknown stack `nope`", "api, store"]);
    run(&dir, &["synth"]).assert_invalid(&["no stage given", "hint: pass `--stage NAME`"]);
}

#[test]
fn outside_a_project() {
    let tmp = tempfile::tempdir().unwrap();
    run(tmp.path(), &["validate"]).assert_invalid(&["no `stacks/project.yaml` found"]);
}

#[test]
fn commands_not_built_say_so_with_exit_2() {
    // Keeps the promise of the CLI surface: an honest error, not a silent no-op.
    let (_t, dir) = minimal();
    let r = run(&dir, &["--help"]);
    r.assert_ok();
    for cmd in [
        "synth", "build", "deploy", "diff", "outputs", "destroy", "graph", "validate", "local",
    ] {
        assert!(r.stdout.contains(cmd), "help lacks {cmd}");
    }
}

#[test]
fn synth_writes_one_template_per_stack_and_prints_only_paths() {
    let (t, dir) = minimal();
    let out = t.path().join("out");
    let r = run(
        &dir,
        &["synth", "--stage", "prod", "--out", out.to_str().unwrap()],
    );
    r.assert_ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    // Deploy order: store before api.
    assert_eq!(
        lines,
        vec![
            out.join("mini-prod-store.template.json").to_str().unwrap(),
            out.join("mini-prod-api.template.json").to_str().unwrap(),
        ]
    );
    let api: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(lines[1]).unwrap()).unwrap();
    // The per-stage override and the parameters barkctl adds for `needs`.
    assert_eq!(api["Resources"]["Queue"]["Properties"]["DelaySeconds"], 5);
    assert_eq!(api["Parameters"]["StoreTableName"]["Type"], "String");
    assert_eq!(
        api["Outputs"]["TableArnSeen"]["Value"]["Ref"],
        "StoreTableArn"
    );
    let store: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(lines[0]).unwrap()).unwrap();
    // Project-level stage params beat project defaults.
    assert_eq!(
        store["Resources"]["Logs"]["Properties"]["RetentionInDays"],
        30
    );
    assert_eq!(
        store["Resources"]["Table"]["Properties"]["TableName"],
        "mini-prod-store-items"
    );
}

#[test]
fn synth_stdout_prints_one_template() {
    let (_t, dir) = minimal();
    let r = run(&dir, &["synth", "--stage", "dev", "--stdout", "store"]);
    r.assert_ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["Resources"]["Logs"]["Properties"]["RetentionInDays"], 7);
    run(&dir, &["synth", "--stage", "dev", "--stdout"]).assert_invalid(&["exactly one stack"]);
}

#[test]
fn graph_prints_waves_and_dot() {
    let (_t, dir) = minimal();
    let r = run(&dir, &["graph"]);
    r.assert_ok();
    assert_eq!(r.stdout, "wave 1:\n  store\nwave 2:\n  api (needs store)\n");
    let r = run(&dir, &["graph", "--format", "dot"]);
    r.assert_ok();
    assert!(r.stdout.starts_with("digraph stacks {"));
    assert!(r
        .stdout
        .contains("\"api\" -> \"store\" [label=\"TableName\\nTableArn\"];"));
}

#[test]
fn project_is_found_from_a_subfolder() {
    let (_t, dir) = minimal();
    let r = run(&dir.join("templates/partials"), &["validate"]);
    r.assert_ok();
    assert!(
        r.stderr.contains("dev: 2 stacks, 3 resources: ok"),
        "{}",
        r.stderr
    );
}

//! `validate`'s secret grant check on `tests/fixtures/secret_grants`: a function
//! whose role may read a secret that its environment never names fails validation
//! (exit 2) with the stack, the function, its role and the secret named.

use crate::harness::{copy_project, fixture, run, write};

#[test]
fn validate_refuses_a_role_that_reads_a_secret_its_function_is_never_handed() {
    let (_t, dir) = copy_project(&fixture("secret_grants"));
    let r = run(&dir, &["validate"]);
    r.assert_invalid(&[]);
    assert_eq!(
        r.stderr,
        "error: stack `sec-dev-app`: function `WorkerFunction` (role `WorkerRole`) may read secret `DbPassword`, which its environment never names\n\
         \n\
         hint: grant `secretsmanager:GetSecretValue` only on the secrets a function is handed in its environment (one role per function where their secrets differ), or pass the secret's ARN to the function that reads it\n"
    );
    assert_eq!(r.stdout, "");
}

#[test]
fn validate_accepts_the_grant_once_the_function_is_handed_the_secret() {
    let (_t, dir) = copy_project(&fixture("secret_grants"));
    let path = dir.join("templates/app.yaml.hbs");
    let text = std::fs::read_to_string(&path).expect("template");
    let handed = "          API_KEY_ARN: !Ref ApiKey\n";
    assert!(text.contains(handed));
    write(
        &path,
        &text.replace(
            handed,
            &format!("{handed}          DB_PASSWORD_ARN: !Ref DbPassword\n"),
        ),
    );
    let r = run(&dir, &["validate"]);
    r.assert_ok();
    assert_eq!(r.stderr, "dev: 1 stacks, 7 resources: ok\n");
}

//! Bad input the CRD schema refuses, judged by the real API server: every row of docs/guarantees.md's
//! table "Bad input: refused at apply time" is a case here, submitted as a server-side dry
//! run (`POST ...?dryRun=All&fieldValidation=Strict`, what `kubectl apply --dry-run=server`
//! sends), and must come back refused with the message the table shows.
//!
//! `DC_PRINT_BAD_INPUT=1 cargo test --test e2e bad_input -- --nocapture` prints the table's
//! rows in Markdown, with what the API server really said.

use kube::core::Status;
use serde_json::{Value, json};

use crate::harness::{cluster, create_namespace, shared_scope};

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Environment,
    Tenant,
}

impl Kind {
    fn plural(self) -> &'static str {
        match self {
            Kind::Environment => "digitalchannelsenvironments",
            Kind::Tenant => "digitalchannelstenants",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Kind::Environment => "dce",
            Kind::Tenant => "dct",
        }
    }

    /// A manifest the API server accepts; each case changes one thing in it.
    fn valid(self) -> Value {
        match self {
            Kind::Environment => json!({
                "apiVersion": "digitalchannels.dev/v1alpha1",
                "kind": "DigitalChannelsEnvironment",
                "metadata": {"name": "prod"},
                "spec": {
                    "authUrl": "https://auth.example.com",
                    "gwsUrl": "https://gws.example.com",
                    "nexusUrl": "https://nexus.example.com",
                    "opsCredentialsSecret": {"name": "gws-ops"},
                    "database": {"urlSecret": {"name": "nexus-db", "key": "url"}},
                },
            }),
            Kind::Tenant => json!({
                "apiVersion": "digitalchannels.dev/v1alpha1",
                "kind": "DigitalChannelsTenant",
                "metadata": {"name": "t100"},
                "spec": {
                    "environmentRef": {"name": "prod"},
                    "contactCenterDomain": "t100",
                    "tenantName": "t100",
                    "credentialsSecret": {"name": "t100-nexus-user"},
                },
            }),
        }
    }
}

/// One invalid manifest: the valid one with `edit` merged in (RFC 7386: `null` removes a
/// field), and words the API server's answer must contain.
struct Case {
    kind: Kind,
    what: &'static str,
    edit: Value,
    expect: &'static [&'static str],
}

fn env(what: &'static str, spec: Value, expect: &'static [&'static str]) -> Case {
    Case {
        kind: Kind::Environment,
        what,
        edit: json!({ "spec": spec }),
        expect,
    }
}

fn tenant(what: &'static str, spec: Value, expect: &'static [&'static str]) -> Case {
    Case {
        kind: Kind::Tenant,
        what,
        edit: json!({ "spec": spec }),
        expect,
    }
}

/// Every row of the table. The expected words are the field path and what is wrong with it.
fn cases() -> Vec<Case> {
    let long = |n: usize| "a".repeat(n);
    vec![
        // DigitalChannelsEnvironment.
        Case {
            kind: Kind::Environment,
            what: "no `spec`",
            edit: json!({"spec": null}),
            expect: &["spec: Required value"],
        },
        Case {
            kind: Kind::Environment,
            what: "`metadata.name` not a DNS name",
            edit: json!({"metadata": {"name": "Prod_1"}}),
            expect: &["metadata.name", "RFC 1123 subdomain"],
        },
        env(
            "`authUrl` missing",
            json!({"authUrl": null}),
            &["spec.authUrl: Required value"],
        ),
        env(
            "`authUrl` without scheme",
            json!({"authUrl": "auth.example.com"}),
            &["spec.authUrl", "should match"],
        ),
        env(
            "`authUrl` not http(s)",
            json!({"authUrl": "ftp://auth.example.com"}),
            &["spec.authUrl", "should match"],
        ),
        env(
            "`authUrl` empty",
            json!({"authUrl": ""}),
            &["spec.authUrl", "should match"],
        ),
        env(
            "`authUrl` with a space",
            json!({"authUrl": "https://auth example.com"}),
            &["spec.authUrl", "should match"],
        ),
        env(
            "`authUrl` with the API path the operator adds",
            json!({"authUrl": "https://auth.example.com/auth/v3"}),
            &["spec.authUrl", "without /auth/v3"],
        ),
        env(
            "`authUrl` longer than 2048 characters",
            json!({"authUrl": format!("https://{}.example.com", long(2040))}),
            &["spec.authUrl", "2048"],
        ),
        env(
            "`environmentUrl` without host",
            json!({"environmentUrl": "https://"}),
            &["spec.environmentUrl", "should match"],
        ),
        env(
            "`environmentUrl` with the API path the operator adds",
            json!({"environmentUrl": "https://auth.example.com/environment/v3/"}),
            &["spec.environmentUrl", "without /environment/v3"],
        ),
        env(
            "`gwsUrl` missing",
            json!({"gwsUrl": null}),
            &["spec.gwsUrl: Required value"],
        ),
        env(
            "`gwsUrl` a number",
            json!({"gwsUrl": 443}),
            &["spec.gwsUrl", "must be of type string"],
        ),
        env(
            "`nexusUrl` without scheme",
            json!({"nexusUrl": "nexus.example.com"}),
            &["spec.nexusUrl", "should match"],
        ),
        env(
            "`nexusUrl` with the API path the operator adds",
            json!({"nexusUrl": "https://nexus.example.com/nexus/v3"}),
            &["spec.nexusUrl", "without /nexus/v3"],
        ),
        env(
            "`opsCredentialsSecret` missing",
            json!({"opsCredentialsSecret": null}),
            &["spec.opsCredentialsSecret: Required value"],
        ),
        env(
            "`opsCredentialsSecret.name` empty",
            json!({"opsCredentialsSecret": {"name": ""}}),
            &["spec.opsCredentialsSecret.name"],
        ),
        env(
            "`opsCredentialsSecret.name` not a Secret name",
            json!({"opsCredentialsSecret": {"name": "GWS_Ops"}}),
            &["spec.opsCredentialsSecret.name", "should match"],
        ),
        env(
            "`opsCredentialsSecret.usernameKey` empty",
            json!({"opsCredentialsSecret": {"name": "gws-ops", "usernameKey": ""}}),
            &["spec.opsCredentialsSecret.usernameKey"],
        ),
        env(
            "`opsCredentialsSecret.passwordKey` not a Secret key",
            json!({"opsCredentialsSecret": {"name": "gws-ops", "passwordKey": "pass word"}}),
            &["spec.opsCredentialsSecret.passwordKey", "should match"],
        ),
        env(
            "`database` missing",
            json!({"database": null}),
            &["spec.database: Required value"],
        ),
        env(
            "`database.urlSecret.key` missing",
            json!({"database": {"urlSecret": {"key": null}}}),
            &["spec.database.urlSecret.key: Required value"],
        ),
        env(
            "`database.urlSecret.name` longer than 253 characters",
            json!({"database": {"urlSecret": {"name": long(254)}}}),
            &["spec.database.urlSecret.name", "253"],
        ),
        env(
            "`database.urlSecret.name` not a Secret name",
            json!({"database": {"urlSecret": {"name": "nexus_db"}}}),
            &["spec.database.urlSecret.name", "should match"],
        ),
        env(
            "`client.id` empty",
            json!({"client": {"id": ""}}),
            &["spec.client.id"],
        ),
        env(
            "`client.id` with surrounding spaces",
            json!({"client": {"id": " nexus_client "}}),
            &["spec.client.id", "should match"],
        ),
        env(
            "`client.id` longer than 128 characters",
            json!({"client": {"id": long(129)}}),
            &["spec.client.id", "128"],
        ),
        env(
            "`client.secret` without `key`",
            json!({"client": {"secret": {"name": "prod-nexus-client"}}}),
            &["spec.client.secret.key: Required value"],
        ),
        env(
            "`client.accessTokenExpirationTimeout` zero",
            json!({"client": {"accessTokenExpirationTimeout": 0}}),
            &[
                "spec.client.accessTokenExpirationTimeout",
                "greater than or equal to 60",
            ],
        ),
        env(
            "`client.refreshTokenExpirationTimeout` negative",
            json!({"client": {"refreshTokenExpirationTimeout": -1}}),
            &[
                "spec.client.refreshTokenExpirationTimeout",
                "greater than or equal to 60",
            ],
        ),
        env(
            "`client.accessTokenExpirationTimeout` beyond 32 bits",
            json!({"client": {"accessTokenExpirationTimeout": 99_999_999_999_i64}}),
            &[
                "spec.client.accessTokenExpirationTimeout",
                "less than or equal to 2147483647",
            ],
        ),
        env(
            "`client.accessTokenExpirationTimeout` a duration string",
            json!({"client": {"accessTokenExpirationTimeout": "12h"}}),
            &[
                "spec.client.accessTokenExpirationTimeout",
                "must be of type integer",
            ],
        ),
        env(
            "`tls` without `caSecret`",
            json!({"tls": {}}),
            &["spec.tls.caSecret: Required value"],
        ),
        env(
            "`tls.caSecret.key` not a Secret key",
            json!({"tls": {"caSecret": {"name": "genesys-ca", "key": "ca/crt"}}}),
            &["spec.tls.caSecret.key", "should match"],
        ),
        env(
            "`nexusDeployment.name` empty",
            json!({"nexusDeployment": {"name": ""}}),
            &["spec.nexusDeployment.name"],
        ),
        env(
            "`nexusDeployment.name` not a Deployment name",
            json!({"nexusDeployment": {"name": "Nexus_Deploy"}}),
            &["spec.nexusDeployment.name", "should match"],
        ),
        env(
            "`nexusDeployment.namespace` not a namespace name",
            json!({"nexusDeployment": {"name": "nexus", "namespace": "nexus.prod"}}),
            &["spec.nexusDeployment.namespace", "should match"],
        ),
        env(
            "`deletionPolicy` unknown",
            json!({"deletionPolicy": "Destroy"}),
            &[
                "spec.deletionPolicy",
                "Unsupported value",
                "Retain",
                "Delete",
            ],
        ),
        env(
            "`deletionPolicy` in lower case",
            json!({"deletionPolicy": "delete"}),
            &["spec.deletionPolicy", "Unsupported value"],
        ),
        env(
            "`suspend` a string",
            json!({"suspend": "yes"}),
            &["spec.suspend", "must be of type boolean"],
        ),
        env(
            "a misspelt field (`authURL`)",
            json!({"authURL": "https://auth.example.com"}),
            &["unknown field", "spec.authURL"],
        ),
        // DigitalChannelsTenant.
        Case {
            kind: Kind::Tenant,
            what: "no `spec`",
            edit: json!({"spec": null}),
            expect: &["spec: Required value"],
        },
        tenant(
            "`environmentRef` missing",
            json!({"environmentRef": null}),
            &["spec.environmentRef: Required value"],
        ),
        tenant(
            "`environmentRef` a string",
            json!({"environmentRef": "prod"}),
            &["spec.environmentRef", "must be of type object"],
        ),
        tenant(
            "`environmentRef.name` empty",
            json!({"environmentRef": {"name": ""}}),
            &["spec.environmentRef.name"],
        ),
        tenant(
            "`environmentRef.name` not a resource name",
            json!({"environmentRef": {"name": "Prod Env"}}),
            &["spec.environmentRef.name", "should match"],
        ),
        tenant(
            "`contactCenterId` not a UUID",
            json!({"contactCenterDomain": null, "contactCenterId": "not-a-uuid"}),
            &["spec.contactCenterId", "should match"],
        ),
        tenant(
            "`contactCenterId` in braces",
            json!({"contactCenterDomain": null,
                   "contactCenterId": "{578ec98e-f07c-46ad-9675-f36c22f3ba9f}"}),
            &["spec.contactCenterId", "should match"],
        ),
        tenant(
            "both `contactCenterId` and `contactCenterDomain`",
            json!({"contactCenterId": "578ec98e-f07c-46ad-9675-f36c22f3ba9f"}),
            &["set contactCenterId or contactCenterDomain, not both"],
        ),
        tenant(
            "`contactCenterDomain` empty",
            json!({"contactCenterDomain": ""}),
            &["spec.contactCenterDomain"],
        ),
        tenant(
            "`tenantName` missing",
            json!({"tenantName": null}),
            &["spec.tenantName: Required value"],
        ),
        tenant(
            "`tenantName` empty",
            json!({"tenantName": ""}),
            &["spec.tenantName"],
        ),
        tenant(
            "`tenantName` blank",
            json!({"tenantName": "   "}),
            &["spec.tenantName", "should match"],
        ),
        tenant(
            "`tenantName` with a trailing space",
            json!({"tenantName": "t100 "}),
            &["spec.tenantName", "should match"],
        ),
        tenant(
            "`tenantName` longer than 128 characters",
            json!({"tenantName": long(129)}),
            &["spec.tenantName", "128"],
        ),
        tenant(
            "`genesysTenantId` negative",
            json!({"genesysTenantId": -1}),
            &["spec.genesysTenantId", "greater than or equal to 0"],
        ),
        tenant(
            "`genesysTenantId` beyond 32 bits",
            json!({"genesysTenantId": 4_294_967_296_i64}),
            &["spec.genesysTenantId", "less than or equal to 2147483647"],
        ),
        tenant(
            "`genesysTenantId` a string",
            json!({"genesysTenantId": "1"}),
            &["spec.genesysTenantId", "must be of type integer"],
        ),
        tenant("`type` empty", json!({"type": ""}), &["spec.type"]),
        tenant(
            "`type` with a leading space",
            json!({"type": " PureEngage"}),
            &["spec.type", "should match"],
        ),
        tenant(
            "`credentialsSecret` missing",
            json!({"credentialsSecret": null}),
            &["spec.credentialsSecret: Required value"],
        ),
        tenant(
            "`credentialsSecret.name` not a Secret name",
            json!({"credentialsSecret": {"name": "T100_User"}}),
            &["spec.credentialsSecret.name", "should match"],
        ),
        tenant(
            "`credentialsSecret.passwordKey` empty",
            json!({"credentialsSecret": {"name": "t100-nexus-user", "passwordKey": ""}}),
            &["spec.credentialsSecret.passwordKey"],
        ),
        tenant(
            "`ucs` without `url`",
            json!({"ucs": {}}),
            &["spec.ucs.url: Required value"],
        ),
        tenant(
            "`ucs.url` without scheme",
            json!({"ucs": {"url": "ucs.example.com"}}),
            &["spec.ucs.url", "should match"],
        ),
        tenant(
            "`ucs.apiKeySecret` without `key`",
            json!({"ucs": {"url": "https://ucs.example.com", "apiKeySecret": {"name": "ucs-key"}}}),
            &["spec.ucs.apiKeySecret.key: Required value"],
        ),
        tenant(
            "`outputSecretName` not a Secret name",
            json!({"outputSecretName": "Not_A_Secret"}),
            &["spec.outputSecretName", "should match"],
        ),
        tenant(
            "`outputSecretName` longer than 253 characters",
            json!({"outputSecretName": long(254)}),
            &["spec.outputSecretName", "253"],
        ),
        Case {
            kind: Kind::Tenant,
            what: "`metadata.name` too long for the default output Secret",
            edit: json!({"metadata": {"name": long(240)}}),
            expect: &["metadata.name is too long", "spec.outputSecretName"],
        },
        tenant(
            "`deletionPolicy` unknown",
            json!({"deletionPolicy": "Keep"}),
            &["spec.deletionPolicy", "Unsupported value"],
        ),
        tenant(
            "a misspelt field (`contactCenter`)",
            json!({"contactCenter": "t100"}),
            &["unknown field", "spec.contactCenter"],
        ),
    ]
}

/// Submits `manifest` as a server-side dry run of a create: nothing is stored.
async fn dry_run_create(
    client: &kube::Client,
    ns: &str,
    kind: Kind,
    manifest: &Value,
) -> Result<(), Box<Status>> {
    let uri = format!(
        "/apis/digitalchannels.dev/v1alpha1/namespaces/{ns}/{}?dryRun=All&fieldValidation=Strict",
        kind.plural()
    );
    let request = http::Request::post(uri)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(manifest).expect("JSON"))
        .expect("request");
    match client.request::<Value>(request).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) => Err(status),
        Err(other) => panic!("dry run of a {}: {other}", kind.short()),
    }
}

/// What the API server said, without what is the same on every row: the prefix naming the
/// object (`DigitalChannelsTenant.digitalchannels.dev "t100" is invalid: `), and the note it
/// adds where the kind has CEL rules that it skipped because of the error.
fn cause(message: &str) -> &str {
    const SKIPPED: &str = ", <nil>: Invalid value: null: some validation rules were not checked \
        because the object was invalid; correct the existing errors to complete validation]";
    if let Some((_, rest)) = message.split_once("strict decoding error: ") {
        return rest;
    }
    let rest = message
        .split_once(" is invalid: ")
        .map(|(_, rest)| rest)
        .unwrap_or(message);
    rest.strip_prefix('[')
        .and_then(|r| r.strip_suffix(SKIPPED))
        .unwrap_or(rest)
}

/// A table cell: pipes escaped, long values (the 254-character names) shortened.
fn cell(text: &str) -> String {
    let mut text = text.replace('|', "\\|").replace('\n', " ");
    let run = "a".repeat(40);
    while let Some(at) = text.find(&run) {
        let end = at + text[at..].chars().take_while(|c| *c == 'a').count();
        text.replace_range(at..end, "aaa…");
    }
    text
}

fn edit_text(edit: &Value) -> String {
    cell(&serde_json::to_string(edit).expect("JSON"))
}

#[tokio::test]
async fn the_schema_refuses_every_row_of_the_bad_input_table() {
    let Some(client) = cluster("bad_input").await else {
        return;
    };
    let _scope = shared_scope();
    let ns = format!("e2e-bad-input-{:04x}", rand::random::<u16>());
    create_namespace(&client, &ns, &[]).await;

    for kind in [Kind::Environment, Kind::Tenant] {
        if let Err(status) = dry_run_create(&client, &ns, kind, &kind.valid()).await {
            panic!("the valid {} is refused: {}", kind.short(), status.message);
        }
    }

    let print = std::env::var("DC_PRINT_BAD_INPUT").as_deref() == Ok("1");
    if print {
        println!(
            "| # | kind | what is wrong | change to a valid manifest | the API server's answer |"
        );
        println!("| --- | --- | --- | --- | --- |");
    }
    let mut failures = Vec::new();
    let cases = cases();
    for (i, case) in cases.iter().enumerate() {
        let mut manifest = case.kind.valid();
        json_patch::merge(&mut manifest, &case.edit);
        match dry_run_create(&client, &ns, case.kind, &manifest).await {
            Ok(()) => failures.push(format!("{}: {}: accepted", case.kind.short(), case.what)),
            Err(status) => {
                let message = &status.message;
                let missing: Vec<_> = case
                    .expect
                    .iter()
                    .filter(|w| !message.contains(**w))
                    .collect();
                // 422 for a schema violation; a field the schema does not know is refused
                // earlier, by strict decoding, with 400.
                let code_ok =
                    status.code == 422 || (status.code == 400 && message.contains("unknown field"));
                if !missing.is_empty() || !code_ok {
                    failures.push(format!(
                        "{}: {}: HTTP {} {message:?} lacks {missing:?}",
                        case.kind.short(),
                        case.what,
                        status.code
                    ));
                }
                if print {
                    println!(
                        "| {} | `{}` | {} | `{}` | {} `{}` |",
                        i + 1,
                        case.kind.short(),
                        case.what,
                        edit_text(&case.edit),
                        status.code,
                        cell(cause(message))
                    );
                }
            }
        }
    }
    let _ = kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(client)
        .delete(&ns, &Default::default())
        .await;
    assert!(
        cases.len() >= 30,
        "docs/guarantees.md promises at least 30 rows: {}",
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} rows not refused as the table says:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

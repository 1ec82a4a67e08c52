//! The shared contact-center list and the choice, on the fake Environment API: how many
//! list requests the tenants of an environment make, and what a failure leaves.

use super::*;
use crate::fakes::{FakeEnvironment, error};
use crate::secret::SecretString;
use crate::upstream::{ErrorKind, System};

const URL: &str = "https://auth.example.com";

fn ops(password: &str) -> Credentials {
    Credentials {
        username: "ops".into(),
        password: SecretString::new(password),
    }
}

fn api() -> FakeEnvironment {
    let api = FakeEnvironment::default();
    api.put_contact_center("cc-100", &["t100"]);
    api.put_contact_center("cc-200", &["t200"]);
    api
}

#[tokio::test]
async fn tenants_asking_together_share_one_request() {
    let (api, lists) = (api(), ContactCenterLists::default());
    let ops = ops("ops");
    let asks = (0..5).map(|_| lists.get(&api, URL, &ops));
    let answers = futures::future::join_all(asks).await;
    assert!(
        answers
            .iter()
            .all(|a| a.as_ref().is_ok_and(|l| l.len() == 2))
    );
    assert_eq!(api.log.count("list_contact_centers"), 1);
    // The same environment in another spelling is the same list.
    lists.get(&api, &format!("{URL}/"), &ops).await.unwrap();
    assert_eq!(api.log.count("list_contact_centers"), 1);
}

#[tokio::test]
async fn a_failure_is_not_kept_and_the_next_asker_tries_again() {
    let (api, lists) = (api(), ContactCenterLists::default());
    let away = error(
        System::Environment,
        "list_contact_centers",
        ErrorKind::Transient,
    );
    api.script.fail_next("list_contact_centers", away);
    let first = lists.get(&api, URL, &ops("ops")).await;
    assert_eq!(
        first.map(|_| ()).map_err(|e| e.kind),
        Err(ErrorKind::Transient)
    );
    let second = lists.get(&api, URL, &ops("ops")).await;
    assert_eq!(second.map(|l| l.len()).map_err(|e| e.kind), Ok(2));
    assert_eq!(api.log.count("list_contact_centers"), 2);
}

#[tokio::test]
async fn a_rotated_ops_password_asks_again_at_once() {
    let (api, lists) = (api(), ContactCenterLists::default());
    lists.get(&api, URL, &ops("ops")).await.unwrap();
    let refused = lists.get(&api, URL, &ops("rotated")).await;
    assert_eq!(
        refused.map(|_| ()).map_err(|e| e.kind),
        Err(ErrorKind::Unauthorized)
    );
    assert_eq!(api.log.count("list_contact_centers"), 2);
}

#[tokio::test]
async fn an_expired_list_is_fetched_again() {
    let api = api();
    let lists = ContactCenterLists::with_lifetime(Duration::ZERO);
    lists.get(&api, URL, &ops("ops")).await.unwrap();
    api.put_contact_center("cc-300", &["t300"]);
    let fresh = lists.get(&api, URL, &ops("ops")).await.unwrap();
    assert_eq!(fresh.len(), 3);
    assert_eq!(api.log.count("list_contact_centers"), 2);
}

#[tokio::test]
async fn the_choice_from_gws_list_by_id_and_by_domain() {
    let (api, lists) = (api(), ContactCenterLists::default());
    let centers = lists.get(&api, URL, &ops("ops")).await.unwrap();
    for (id, domain, expected) in [
        (Some("CC-200"), None, Ok("cc-200")),
        (Some("cc-200"), Some("t100"), Ok("cc-200")),
        (None, Some("T100"), Ok("cc-100")),
        (None, None, Err(Reason::AmbiguousContactCenter)),
        (Some("cc-999"), None, Err(Reason::ContactCenterNotFound)),
    ] {
        let chosen = choose(&centers, id, domain);
        let got = chosen.map(|c| c.id.as_str()).map_err(|e| e.reason);
        assert_eq!(got, expected, "id {id:?}, domain {domain:?}");
    }
}

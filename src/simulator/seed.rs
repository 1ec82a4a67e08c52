//! What the simulated GWS knows before the first request: admin users, contact centers and the
//! tenant Persons used for the password grant.

use std::fmt;

use serde::Deserialize;

/// Contact center of the demo tenant `t100`; the id is the runbook's own example `ccId`.
pub const DEMO_CC_T100: &str = "578ec98e-f07c-46ad-9675-f36c22f3ba9f";
/// Contact center of the demo tenant `t200`.
pub const DEMO_CC_T200: &str = "9c1f5d2a-3b7e-4c8d-a6f0-2e4b8d9c7a15";
/// Environment both demo contact centers belong to.
pub const DEMO_ENVIRONMENT_ID: &str = "0d4c0a52-6f0e-4f59-8a1b-7c2d3e4f5a6b";

/// The id of the `i`-th contact center of [`Seed::with_contact_centers`].
pub fn generated_contact_center(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012x}")
}

/// Initial content of the simulated services. Deserializable so that `simulate` can read one
/// from a file; not serializable, because it holds passwords.
#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Seed {
    /// GWS Auth admin ("ops") users as (username, password), checked by HTTP Basic.
    pub ops_users: Vec<(String, String)>,
    pub contact_centers: Vec<ContactCenter>,
    pub tenant_users: Vec<TenantUser>,
}

/// A GWS contact center, as listed by the Environment API.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactCenter {
    /// The `ccId`, a UUID.
    pub id: String,
    pub environment_id: String,
    /// Names such as `t100`, which the operator uses to pick a contact center.
    pub domains: Vec<String>,
}

/// A tenant Person that can log in through the password grant as `<ccId>\<username>`.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantUser {
    pub contact_center_id: String,
    pub username: String,
    pub password: String,
}

impl Seed {
    /// The runbook's example values: `ops:ops`, contact centers `t100` and `t200`, and the
    /// Person `nexus` / `nexus_password` in each.
    pub fn demo() -> Seed {
        let contact_centers = [(DEMO_CC_T100, "t100"), (DEMO_CC_T200, "t200")];
        Seed {
            ops_users: vec![("ops".to_owned(), "ops".to_owned())],
            contact_centers: contact_centers
                .iter()
                .map(|(id, domain)| ContactCenter {
                    id: (*id).to_owned(),
                    environment_id: DEMO_ENVIRONMENT_ID.to_owned(),
                    domains: vec![(*domain).to_owned()],
                })
                .collect(),
            tenant_users: contact_centers
                .iter()
                .map(|(id, _)| TenantUser {
                    contact_center_id: (*id).to_owned(),
                    username: "nexus".to_owned(),
                    password: "nexus_password".to_owned(),
                })
                .collect(),
        }
    }

    /// The demo seed plus `n` more contact centers, domains `cc0`, `cc1`, ... (ids
    /// `00000000-0000-4000-8000-00000000000N`), each with the Person `nexus` /
    /// `nexus_password`: for load and concurrency tests.
    pub fn with_contact_centers(n: usize) -> Seed {
        let mut seed = Seed::demo();
        for i in 0..n {
            let id = generated_contact_center(i);
            seed.contact_centers.push(ContactCenter {
                id: id.clone(),
                environment_id: DEMO_ENVIRONMENT_ID.to_owned(),
                domains: vec![format!("cc{i}")],
            });
            seed.tenant_users.push(TenantUser {
                contact_center_id: id,
                username: "nexus".to_owned(),
                password: "nexus_password".to_owned(),
            });
        }
        seed
    }

    /// Whether `username` / `password` is a seeded ops user.
    pub(crate) fn is_ops_user(&self, username: &str, password: &str) -> bool {
        self.ops_users
            .iter()
            .any(|(u, p)| u == username && p == password)
    }

    pub(crate) fn contact_center(&self, cc_id: &str) -> Option<&ContactCenter> {
        self.contact_centers.iter().find(|cc| cc.id == cc_id)
    }

    /// Whether the Person `username` of contact center `cc_id` has this password.
    pub(crate) fn is_tenant_user(&self, cc_id: &str, username: &str, password: &str) -> bool {
        self.tenant_users.iter().any(|u| {
            u.contact_center_id == cc_id && u.username == username && u.password == password
        })
    }
}

// Debug by hand so that a logged config never shows a password.
impl fmt::Debug for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ops: Vec<&str> = self.ops_users.iter().map(|(u, _)| u.as_str()).collect();
        f.debug_struct("Seed")
            .field("ops_users", &ops)
            .field("contact_centers", &self.contact_centers)
            .field("tenant_users", &self.tenant_users)
            .finish()
    }
}

impl fmt::Debug for TenantUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantUser")
            .field("contact_center_id", &self.contact_center_id)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

//! `trigger-ops secret`: the client-key secret's rotation, in the right
//! order. The deployment owns the secrets (Terraform makes them); this says
//! what to give it, and refuses a rotation that would hand anyone a fresh
//! quota or lift a block:
//!
//! - never while the last rotation's overlap runs (its previous secret
//!   would be dropped before the quotas it holds ran out);
//! - the overlap lasts at least `QUOTA_WINDOW` (every slot taken under the
//!   retiring secret has left the window by then), and outlasts every block
//!   in force (blocks are keyed, and made with the retiring secret).

use serde::Serialize;
use shared::aws::table::secret::SecretState;
use shared::clock::EpochMillis;
use shared::rules::time_format::rfc3339;
use std::time::Duration;

/// What to set for a rotation (Terraform variables), and why so long.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rotation {
    pub client_key_generation: u64,
    pub client_key_previous_until: String,
    /// What the overlap's end was set by: `quota window` or `a block`.
    pub overlap_set_by: &'static str,
}

/// The rotation to make at `now` (pure): `window` is `QUOTA_WINDOW`,
/// `last_block_ends` when the last block in force ends, `overlap` an
/// operator's longer overlap.
pub fn plan_rotation(
    state: &SecretState,
    now: EpochMillis,
    window: Duration,
    last_block_ends: Option<EpochMillis>,
    overlap: Option<Duration>,
) -> Result<Rotation, String> {
    if state.fingerprint.is_none() {
        return Err(
            "the table holds no fingerprint of the ingress's secret: apply the \
                    Terraform first (it writes meta#client-key), then rotate"
                .into(),
        );
    }
    if let Some(until) = state.previous_until.filter(|&until| until > now) {
        return Err(format!(
            "the last rotation's overlap runs until {}: rotating again now would drop the \
             secret it still honours, and every quota and block made with it. Rotate after then",
            rfc3339(until)
        ));
    }
    let asked = overlap.unwrap_or(window);
    if asked < window {
        return Err(format!(
            "--overlap {} is shorter than QUOTA_WINDOW ({}): a client would get back the \
             triggers it spent before the rotation",
            humantime::format_duration(asked),
            humantime::format_duration(window)
        ));
    }
    let by_window = now.saturating_add(u64::try_from(asked.as_millis()).unwrap_or(u64::MAX));
    let (until, overlap_set_by) = match last_block_ends {
        Some(block) if block > by_window => (block, "a block"),
        _ => (by_window, "quota window"),
    };
    // Whole seconds, rounded up: Terraform and the ingress read RFC 3339.
    let until = until.div_ceil(1000) * 1000;
    Ok(Rotation {
        client_key_generation: state.generation + 1,
        client_key_previous_until: rfc3339(until),
        overlap_set_by,
    })
}

/// `secret rotate` for people: the variables, then the order of things.
pub fn rotation_text(rotation: &Rotation) -> String {
    format!(
        "Set in your Terraform variables (terraform.tfvars):\n\
         \n  client_key_generation     = {}\n  client_key_previous_until = \"{}\"\n\n\
         then `terraform apply` (the ingress gets the new secret and keeps the old one until \
         then: {}), then `trigger-ops secret status`. After that time, set \
         client_key_previous_until = \"\" at any later apply.\n",
        rotation.client_key_generation,
        rotation.client_key_previous_until,
        match rotation.overlap_set_by {
            "a block" => "the last block in force ends then",
            _ => "one quota window",
        }
    )
}

/// `secret status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    pub generation: u64,
    /// `none`, `running` (the previous secret still counts) or `ended`.
    pub overlap: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_until: Option<String>,
    /// Whether the secret this tool was given is the ingress's current one.
    pub secret_matches: Option<bool>,
}

pub fn status(state: &SecretState, secret: Option<&[u8]>, now: EpochMillis) -> Status {
    Status {
        generation: state.generation,
        overlap: match state.previous_until {
            None => "none",
            Some(until) if until > now => "running",
            Some(_) => "ended",
        },
        previous_until: state.previous_until.map(rfc3339),
        secret_matches: secret
            .zip(state.fingerprint.as_deref())
            .map(|(secret, theirs)| {
                shared::rules::client_key::secret_fingerprint(secret) == theirs
            }),
    }
}

pub fn status_text(status: &Status) -> String {
    let mut out = format!("generation {}\n", status.generation);
    match (status.overlap, &status.previous_until) {
        ("running", Some(until)) => out.push_str(&format!(
            "overlap running until {until}: each client is charged and refused under both secrets\n"
        )),
        ("ended", Some(until)) => out.push_str(&format!(
            "overlap ended at {until}: set client_key_previous_until = \"\" at the next apply\n"
        )),
        _ => out.push_str("no overlap: one secret\n"),
    }
    match status.secret_matches {
        Some(true) => out.push_str("this secret is the ingress's\n"),
        Some(false) => out.push_str("this secret is NOT the ingress's current one\n"),
        None => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400_000;
    const WEEK: Duration = Duration::from_secs(7 * 86_400);

    fn deployed(generation: u64, previous_until: Option<EpochMillis>) -> SecretState {
        SecretState {
            fingerprint: Some("f".into()),
            generation,
            previous_fingerprint: previous_until.map(|_| "p".into()),
            previous_until,
        }
    }

    #[test]
    fn a_rotation_steps_the_generation_and_overlaps_one_window() {
        let now = 1_800_000_000_000;
        let plan = plan_rotation(&deployed(2, None), now, WEEK, None, None).unwrap();
        assert_eq!(plan.client_key_generation, 3);
        assert_eq!(plan.client_key_previous_until, rfc3339(now + 7 * DAY));
        assert_eq!(plan.overlap_set_by, "quota window");
    }

    #[test]
    fn the_overlap_outlasts_every_block_and_rounds_up_to_a_second() {
        let now = 1_800_000_000_000;
        let block = now + 30 * DAY + 1;
        let plan = plan_rotation(&deployed(0, None), now, WEEK, Some(block), None).unwrap();
        assert_eq!(
            plan.client_key_previous_until,
            rfc3339(now + 30 * DAY + 1000)
        );
        assert_eq!(plan.overlap_set_by, "a block");
        // A block ending within the window changes nothing.
        let plan = plan_rotation(&deployed(0, None), now, WEEK, Some(now + DAY), None).unwrap();
        assert_eq!(plan.overlap_set_by, "quota window");
    }

    #[test]
    fn no_rotation_during_an_overlap_nor_with_a_short_one_nor_before_a_deployment() {
        let now = 1_800_000_000_000;
        let running = plan_rotation(&deployed(1, Some(now + 1)), now, WEEK, None, None);
        assert!(running.unwrap_err().contains("overlap runs until"));
        let ended = plan_rotation(&deployed(1, Some(now)), now, WEEK, None, None).unwrap();
        assert_eq!(ended.client_key_generation, 2);
        let short = plan_rotation(
            &deployed(0, None),
            now,
            WEEK,
            None,
            Some(Duration::from_secs(86_400)),
        );
        assert!(short.unwrap_err().contains("shorter than QUOTA_WINDOW"));
        let longer = plan_rotation(&deployed(0, None), now, WEEK, None, Some(WEEK * 2)).unwrap();
        assert_eq!(longer.client_key_previous_until, rfc3339(now + 14 * DAY));
        let nothing = plan_rotation(&SecretState::default(), now, WEEK, None, None);
        assert!(nothing.unwrap_err().contains("no fingerprint"));
    }

    #[test]
    fn status_says_whether_the_overlap_runs_and_whether_the_secret_is_the_ingresss() {
        let now = 1_800_000_000_000;
        let mut state = deployed(1, Some(now + DAY));
        state.fingerprint = Some(shared::rules::client_key::secret_fingerprint(b"right"));
        let shown = status(&state, Some(b"right"), now);
        assert_eq!(
            (shown.overlap, shown.secret_matches),
            ("running", Some(true))
        );
        assert!(status_text(&shown).contains("overlap running until"));
        let shown = status(&state, Some(b"wrong"), now + 2 * DAY);
        assert_eq!(
            (shown.overlap, shown.secret_matches),
            ("ended", Some(false))
        );
        assert!(status_text(&shown).contains("client_key_previous_until = \"\""));
        assert_eq!(status(&deployed(0, None), None, now).overlap, "none");
    }
}

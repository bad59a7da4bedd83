//! The one order state machine. Every status change of an order asks [`next`]; nothing else
//! decides which transitions exist.
//!
//! ```text
//! pending_payment --pay--> paid --fulfil--> fulfilled --complete--> completed
//! pending_payment --cancel/expire--> cancelled
//! paid --cancel (staff, refunds the payment)--> cancelled
//! fulfilled|completed|partially_returned --return_part--> partially_returned
//! fulfilled|completed|partially_returned --return_all--> returned
//! ```

use crate::error::ApiError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    PendingPayment,
    Paid,
    Fulfilled,
    Completed,
    Cancelled,
    PartiallyReturned,
    Returned,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 7] = [
        OrderStatus::PendingPayment,
        OrderStatus::Paid,
        OrderStatus::Fulfilled,
        OrderStatus::Completed,
        OrderStatus::Cancelled,
        OrderStatus::PartiallyReturned,
        OrderStatus::Returned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::PendingPayment => "pending_payment",
            OrderStatus::Paid => "paid",
            OrderStatus::Fulfilled => "fulfilled",
            OrderStatus::Completed => "completed",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::PartiallyReturned => "partially_returned",
            OrderStatus::Returned => "returned",
        }
    }

    pub fn parse(s: &str) -> Option<OrderStatus> {
        OrderStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl crate::http::query::OneOf for OrderStatus {
    fn all() -> &'static [Self] {
        &OrderStatus::ALL
    }
    fn as_str(self) -> &'static str {
        OrderStatus::as_str(self)
    }
}

/// Something that changes an order's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderAction {
    Pay,
    Fulfil,
    Complete,
    Cancel,
    /// The expiry task cancelling an unpaid order.
    Expire,
    ReturnPart,
    ReturnAll,
}

impl OrderAction {
    pub const ALL: [OrderAction; 7] = [
        OrderAction::Pay,
        OrderAction::Fulfil,
        OrderAction::Complete,
        OrderAction::Cancel,
        OrderAction::Expire,
        OrderAction::ReturnPart,
        OrderAction::ReturnAll,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderAction::Pay => "pay",
            OrderAction::Fulfil => "fulfil",
            OrderAction::Complete => "complete",
            OrderAction::Cancel => "cancel",
            OrderAction::Expire => "expire",
            OrderAction::ReturnPart => "return_part",
            OrderAction::ReturnAll => "return_all",
        }
    }
}

/// `action` is not possible on an order in `from` (for this actor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IllegalTransition {
    pub from: OrderStatus,
    pub action: OrderAction,
    /// What this actor could do instead.
    pub allowed: Vec<OrderAction>,
}

impl From<IllegalTransition> for ApiError {
    fn from(t: IllegalTransition) -> Self {
        let allowed: Vec<String> = t.allowed.iter().map(|a| a.as_str().to_owned()).collect();
        ApiError::IllegalTransition {
            detail: format!(
                "cannot {} an order that is {}; allowed now: {}",
                t.action.as_str(),
                t.from.as_str(),
                if allowed.is_empty() {
                    "nothing (the order is final)".to_owned()
                } else {
                    allowed.join(", ")
                }
            ),
            current_status: t.from.as_str().to_owned(),
            allowed_actions: allowed,
        }
    }
}

/// The status an order moves to when `actor_is_staff` (or not) takes `action` on it in `status`.
/// Cancelling a *paid* order is for staff only, because it refunds the payment.
pub fn next(
    status: OrderStatus,
    action: OrderAction,
    actor_is_staff: bool,
) -> Result<OrderStatus, IllegalTransition> {
    target(status, action, actor_is_staff).ok_or_else(|| IllegalTransition {
        from: status,
        action,
        allowed: allowed_actions(status, actor_is_staff),
    })
}

/// The transition table: the one `match` every transition comes from.
fn target(status: OrderStatus, action: OrderAction, actor_is_staff: bool) -> Option<OrderStatus> {
    use OrderAction as A;
    use OrderStatus as S;
    match (status, action) {
        (S::PendingPayment, A::Pay) => Some(S::Paid),
        (S::PendingPayment, A::Cancel | A::Expire) => Some(S::Cancelled),
        (S::Paid, A::Fulfil) if actor_is_staff => Some(S::Fulfilled),
        (S::Paid, A::Cancel) if actor_is_staff => Some(S::Cancelled),
        (S::Fulfilled, A::Complete) if actor_is_staff => Some(S::Completed),
        (S::Fulfilled | S::Completed | S::PartiallyReturned, A::ReturnPart) if actor_is_staff => {
            Some(S::PartiallyReturned)
        }
        (S::Fulfilled | S::Completed | S::PartiallyReturned, A::ReturnAll) if actor_is_staff => {
            Some(S::Returned)
        }
        _ => None,
    }
}

/// The actions [`next`] accepts from `status` for this actor, in [`OrderAction::ALL`] order.
/// `Expire` is the system's, not a person's, and is left out.
pub fn allowed_actions(status: OrderStatus, actor_is_staff: bool) -> Vec<OrderAction> {
    OrderAction::ALL
        .into_iter()
        .filter(|a| *a != OrderAction::Expire)
        .filter(|a| target(status, *a, actor_is_staff).is_some())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderAction as A;
    use OrderStatus as S;

    /// Every (status, action) pair, for staff and for customers: the expected target or `None`.
    #[test]
    fn every_transition_is_in_the_table() {
        #[rustfmt::skip]
        let table: &[(S, A, Option<S>, Option<S>)] = &[
            // status              action         staff                        customer
            (S::PendingPayment,    A::Pay,        Some(S::Paid),               Some(S::Paid)),
            (S::PendingPayment,    A::Fulfil,     None,                        None),
            (S::PendingPayment,    A::Complete,   None,                        None),
            (S::PendingPayment,    A::Cancel,     Some(S::Cancelled),          Some(S::Cancelled)),
            (S::PendingPayment,    A::Expire,     Some(S::Cancelled),          Some(S::Cancelled)),
            (S::PendingPayment,    A::ReturnPart, None,                        None),
            (S::PendingPayment,    A::ReturnAll,  None,                        None),
            (S::Paid,              A::Pay,        None,                        None),
            (S::Paid,              A::Fulfil,     Some(S::Fulfilled),          None),
            (S::Paid,              A::Complete,   None,                        None),
            // Refunds the payment: staff only.
            (S::Paid,              A::Cancel,     Some(S::Cancelled),          None),
            (S::Paid,              A::Expire,     None,                        None),
            (S::Paid,              A::ReturnPart, None,                        None),
            (S::Paid,              A::ReturnAll,  None,                        None),
            (S::Fulfilled,         A::Pay,        None,                        None),
            (S::Fulfilled,         A::Fulfil,     None,                        None),
            (S::Fulfilled,         A::Complete,   Some(S::Completed),          None),
            (S::Fulfilled,         A::Cancel,     None,                        None),
            (S::Fulfilled,         A::Expire,     None,                        None),
            (S::Fulfilled,         A::ReturnPart, Some(S::PartiallyReturned),  None),
            (S::Fulfilled,         A::ReturnAll,  Some(S::Returned),           None),
            (S::Completed,         A::Pay,        None,                        None),
            (S::Completed,         A::Fulfil,     None,                        None),
            (S::Completed,         A::Complete,   None,                        None),
            (S::Completed,         A::Cancel,     None,                        None),
            (S::Completed,         A::Expire,     None,                        None),
            (S::Completed,         A::ReturnPart, Some(S::PartiallyReturned),  None),
            (S::Completed,         A::ReturnAll,  Some(S::Returned),           None),
            (S::Cancelled,         A::Pay,        None,                        None),
            (S::Cancelled,         A::Fulfil,     None,                        None),
            (S::Cancelled,         A::Complete,   None,                        None),
            (S::Cancelled,         A::Cancel,     None,                        None),
            (S::Cancelled,         A::Expire,     None,                        None),
            (S::Cancelled,         A::ReturnPart, None,                        None),
            (S::Cancelled,         A::ReturnAll,  None,                        None),
            (S::PartiallyReturned, A::Pay,        None,                        None),
            (S::PartiallyReturned, A::Fulfil,     None,                        None),
            (S::PartiallyReturned, A::Complete,   None,                        None),
            (S::PartiallyReturned, A::Cancel,     None,                        None),
            (S::PartiallyReturned, A::Expire,     None,                        None),
            (S::PartiallyReturned, A::ReturnPart, Some(S::PartiallyReturned),  None),
            (S::PartiallyReturned, A::ReturnAll,  Some(S::Returned),           None),
            (S::Returned,          A::Pay,        None,                        None),
            (S::Returned,          A::Fulfil,     None,                        None),
            (S::Returned,          A::Complete,   None,                        None),
            (S::Returned,          A::Cancel,     None,                        None),
            (S::Returned,          A::Expire,     None,                        None),
            (S::Returned,          A::ReturnPart, None,                        None),
            (S::Returned,          A::ReturnAll,  None,                        None),
        ];
        assert_eq!(table.len(), S::ALL.len() * A::ALL.len(), "every pair once");
        for status in S::ALL {
            for action in A::ALL {
                let rows: Vec<_> = table
                    .iter()
                    .filter(|r| r.0 == status && r.1 == action)
                    .collect();
                assert_eq!(rows.len(), 1, "{status:?} {action:?}");
                let (_, _, staff, customer) = *rows[0];
                for (is_staff, expected) in [(true, staff), (false, customer)] {
                    let got = next(status, action, is_staff);
                    assert_eq!(
                        got.as_ref().ok().copied(),
                        expected,
                        "{status:?} {action:?}"
                    );
                    if let Err(e) = got {
                        assert_eq!(e.from, status);
                        assert_eq!(e.allowed, allowed_actions(status, is_staff));
                    }
                    // allowed_actions agrees with next.
                    if action != A::Expire {
                        assert_eq!(
                            allowed_actions(status, is_staff).contains(&action),
                            expected.is_some(),
                            "{status:?} {action:?} staff={is_staff}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn terminal_states_allow_nothing() {
        for is_staff in [true, false] {
            assert!(allowed_actions(S::Cancelled, is_staff).is_empty());
            assert!(allowed_actions(S::Returned, is_staff).is_empty());
        }
    }

    #[test]
    fn an_illegal_transition_is_a_409_naming_state_and_allowed_actions() {
        let err: ApiError = next(S::Cancelled, A::Cancel, true).unwrap_err().into();
        let problem = err.to_problem();
        assert_eq!(problem.status, 409);
        assert_eq!(problem.current_status.as_deref(), Some("cancelled"));
        assert_eq!(problem.allowed_actions, Some(vec![]));
        let err: ApiError = next(S::Paid, A::Cancel, false).unwrap_err().into();
        assert_eq!(err.to_problem().allowed_actions, Some(vec![]));
        let err: ApiError = next(S::Paid, A::Pay, true).unwrap_err().into();
        assert_eq!(
            err.to_problem().allowed_actions,
            Some(vec!["fulfil".to_owned(), "cancel".to_owned()])
        );
    }

    #[test]
    fn statuses_round_trip() {
        for s in S::ALL {
            assert_eq!(S::parse(s.as_str()), Some(s));
        }
    }
}

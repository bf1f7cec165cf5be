//! The webhook's dead letters: order events its receiver refused for good, set aside (and the
//! cursor moved past them in the same transaction) so that later events flow, and tried again
//! when an operator asks.

use super::error::ctx;
use super::{Store, StoreError, text, uint};

/// An order event set aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The event's number in the order log.
    pub seq: u64,
    /// The order's number (`None`: the event was pruned since).
    pub order_code: Option<String>,
    /// The receiver's last HTTP status.
    pub status: u16,
    /// What it answered, cut short.
    pub message: String,
    /// Attempts so far.
    pub tries: u64,
    /// When it was last set aside (epoch ms).
    pub dead_ms: u64,
    /// Whether a retry is asked and not yet made.
    pub retry_asked: bool,
}

/// How much of a receiver's answer is kept.
const MESSAGE_CHARS: usize = 300;

impl Store {
    /// Sets event `seq` aside as refused for good (`status`, `message`, after `tries` more
    /// attempts) and moves the consumer `cursor` past it, both or neither. A retry that was
    /// refused again is set aside again with its tries added up.
    pub fn dead_letter(
        &mut self,
        cursor: &str,
        seq: u64,
        (status, message): (u16, &str),
        tries: u64,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let message: String = message.chars().take(MESSAGE_CHARS).collect();
        self.tx(|c| {
            c.exec(
                "INSERT INTO webhook_dead_letters (seq, status, message, tries, dead_ms, retry_asked)
                 VALUES ($1, $2, $3, $4, $5, 0)
                 ON CONFLICT (seq) DO UPDATE SET status = excluded.status, message = excluded.message,
                 tries = webhook_dead_letters.tries + excluded.tries, dead_ms = excluded.dead_ms, retry_asked = 0",
                &[seq.into(), u64::from(status).into(), message.as_str().into(), tries.into(), now_ms.into()],
            )?;
            c.exec(
                "INSERT INTO outbox (name, seq) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET seq = CASE WHEN outbox.seq > excluded.seq THEN outbox.seq ELSE excluded.seq END",
                &[cursor.into(), seq.into()],
            )?;
            Ok(())
        })
        .map_err(ctx("set a webhook event aside"))
    }

    /// Every dead letter, oldest event first.
    pub fn dead_letters(&mut self) -> Result<Vec<DeadLetter>, StoreError> {
        let rows = self
            .conn
            .query(
                "SELECT d.seq, o.code, d.status, d.message, d.tries, d.dead_ms, d.retry_asked
                 FROM webhook_dead_letters d
                 LEFT JOIN order_events e ON e.seq = d.seq LEFT JOIN orders o ON o.id = e.order_id
                 ORDER BY d.seq",
                &[],
            )
            .map_err(ctx("read the webhook's dead letters"))?;
        Ok(rows
            .iter()
            .map(|r| DeadLetter {
                seq: uint(r, 0),
                order_code: text(r, 1),
                status: u16::try_from(uint(r, 2)).unwrap_or(0),
                message: text(r, 3).unwrap_or_default(),
                tries: uint(r, 4),
                dead_ms: uint(r, 5),
                retry_asked: uint(r, 6) != 0,
            })
            .collect())
    }

    /// How many dead letters there are.
    pub fn dead_letter_count(&mut self) -> Result<u64, StoreError> {
        let rows = self
            .conn
            .query("SELECT COUNT(*) FROM webhook_dead_letters", &[])
            .map_err(ctx("count the webhook's dead letters"))?;
        Ok(rows.first().map_or(0, |r| uint(r, 0)))
    }

    /// Asks for dead letters `seqs` (every one when `None`) to be tried again; returns how many
    /// were asked (a number that is no dead letter asks nothing).
    pub fn ask_retry(&mut self, seqs: Option<&[u64]>) -> Result<u64, StoreError> {
        self.tx(|c| {
            let Some(seqs) = seqs else {
                return Ok(c.exec("UPDATE webhook_dead_letters SET retry_asked = 1", &[])?);
            };
            let mut asked = 0;
            for &seq in seqs {
                asked +=
                    c.exec("UPDATE webhook_dead_letters SET retry_asked = 1 WHERE seq = $1", &[seq.into()])?;
            }
            Ok(asked)
        })
        .map_err(ctx("ask for dead letters to be retried"))
    }

    /// The dead letters whose retry is asked, oldest first.
    pub fn retries_asked(&mut self) -> Result<Vec<u64>, StoreError> {
        let rows = self
            .conn
            .query("SELECT seq FROM webhook_dead_letters WHERE retry_asked = 1 ORDER BY seq", &[])
            .map_err(ctx("read the dead letters to retry"))?;
        Ok(rows.iter().map(|r| uint(r, 0)).collect())
    }

    /// Drops dead letter `seq`: its retry was delivered (or its event is gone).
    pub fn dead_letter_delivered(&mut self, seq: u64) -> Result<(), StoreError> {
        self.conn
            .exec("DELETE FROM webhook_dead_letters WHERE seq = $1", &[seq.into()])
            .map(|_| ())
            .map_err(ctx("drop a delivered dead letter"))
    }
}

//! What a completion does to its proxy: a short IP ban that outlasted its pause escalates, a
//! long refusal seen again after its rest kills, the dead rule counts, a penalty rests the
//! proxy, and a drained proxy starts its rest.

use crate::decision::Ticket;
use crate::event::Event;
use crate::health::HealthWindow;
use crate::ids::ProxyId;
use crate::outcome::Outcome;
use crate::pool::ProxyState;
use crate::time::{Duration, Instant};

use super::{Engine, lane_at};

impl Engine {
    /// A short IP ban (403 read as `ip_pause`) on a request sent after the proxy's previous short
    /// ban should have lifted shows a long ban: it is handled as one (rest, and a step toward
    /// death).
    pub(super) fn escalate_ban(&mut self, ticket: &Ticket, outcome: Outcome) -> Outcome {
        let entry = self.pool.entry(ticket.proxy);
        match outcome {
            // The record stays until an answer comes through: a proxy whose ban outlasted its
            // pause is suspect, and its next 403 is a long ban too.
            Outcome::Forbidden { pause: Some(_) }
                if entry.ban_lifts_at.is_some_and(|lifts| ticket.sent_at >= lifts) =>
            {
                Outcome::Forbidden { pause: None }
            }
            Outcome::Ok => {
                entry.ban_lifts_at = None;
                outcome
            }
            _ => outcome,
        }
    }

    /// Whether a long IP refusal (`Forbidden` without a pause: a firewall 403, a blocked IP's
    /// 405, a short ban that outlasted its pause) meets a request sent after the rest the last
    /// one imposed: the refusal outlasts rests. An answer that comes through clears the record.
    pub(super) fn refused_after_rest(&mut self, ticket: &Ticket, outcome: Outcome) -> bool {
        let entry = self.pool.entry(ticket.proxy);
        match outcome {
            Outcome::Forbidden { pause: None } => entry.refused_until.is_some_and(|t| ticket.sent_at >= t),
            Outcome::Ok => {
                entry.refused_until = None;
                false
            }
            _ => false,
        }
    }

    /// Health, penalties and rest for the proxy of a completed request.
    pub(super) fn settle_proxy(
        &mut self,
        id: ProxyId,
        held_here: bool,
        outcome: Outcome,
        (ip_429, refused_after_rest): (bool, bool),
        now: Instant,
    ) {
        let penalty = match outcome {
            Outcome::RateLimited { retry_after, .. } if ip_429 => {
                Some(self.config.penalty_rest.max(retry_after.unwrap_or(Duration::ZERO)))
            }
            Outcome::Forbidden { pause: None } | Outcome::Blocked => Some(self.config.penalty_rest),
            Outcome::Forbidden { pause: Some(pause) } => {
                self.pause_for_ban(id, now + pause);
                None
            }
            _ => None,
        };
        let rule = self.config.dead_rule;
        let entry = self.pool.entry(id);
        if entry.state == ProxyState::Dead {
            return;
        }
        if held_here {
            entry.health.record(outcome.counts_against_proxy(), &rule);
        }
        if let Some(penalty) = penalty {
            entry.penalty_until = entry.penalty_until.max(now + penalty);
            if outcome == (Outcome::Forbidden { pause: None }) {
                entry.refused_until =
                    Some(entry.refused_until.map_or(now + penalty, |t| t.max(now + penalty)));
            }
            if matches!(entry.state, ProxyState::Active | ProxyState::Resting { .. }) {
                if entry.holder.is_none() {
                    self.pool.withdraw(id);
                }
                let entry = self.pool.entry(id);
                entry.state = ProxyState::Draining;
                entry.epoch = entry.epoch.wrapping_add(1);
                if let Some(lane) = entry.holder.and_then(|r| lane_at(&mut self.lanes, r))
                    && lane.current == Some(id)
                {
                    lane.current = None;
                }
            }
        }
        let entry = self.pool.entry(id);
        if held_here && refused_after_rest {
            self.mark_dead_as(id, true, now);
        } else if held_here && entry.health.is_dead(&rule) {
            self.mark_dead(id, now);
        } else if entry.state == ProxyState::Draining && entry.in_flight == 0 {
            self.start_rest(id);
        }
    }

    /// A short IP ban: the proxy carries nothing until `until`, and then goes on with its lease
    /// (a proxy already resting rests at least that long).
    fn pause_for_ban(&mut self, id: ProxyId, until: Instant) {
        let entry = self.pool.entry(id);
        entry.penalty_until = entry.penalty_until.max(until);
        entry.ban_lifts_at = Some(entry.ban_lifts_at.map_or(until, |t| t.max(until)));
        let holder = entry.holder;
        match (entry.state, holder.and_then(|r| lane_at(&mut self.lanes, r))) {
            (ProxyState::Active, Some(lane)) => {
                entry.state = ProxyState::Resting { ready_at: until };
                entry.paused = true;
                if lane.current == Some(id) {
                    lane.current = None;
                }
                lane.enqueue(&mut self.pool, id);
            }
            (ProxyState::Resting { ready_at }, Some(lane)) if ready_at < until => {
                entry.state = ProxyState::Resting { ready_at: until };
                lane.enqueue(&mut self.pool, id);
            }
            (ProxyState::Resting { ready_at }, None) if ready_at < until => {
                self.pool.withdraw(id);
                self.pool.entry(id).state = ProxyState::Resting { ready_at: until };
                self.pool.release(id);
            }
            // A draining proxy rests at least until `penalty_until`; a dead one stays dead.
            _ => {}
        }
    }

    pub(super) fn mark_dead(&mut self, id: ProxyId, now: Instant) {
        self.mark_dead_as(id, false, now);
    }

    /// Marks `id` dead: by the dead rule, or (`refused_after_rest`) because Kaspi still refused
    /// its IP after a full rest.
    fn mark_dead_as(&mut self, id: ProxyId, refused_after_rest: bool, now: Instant) {
        let entry = self.pool.entry(id);
        entry.state = ProxyState::Dead;
        entry.epoch = entry.epoch.wrapping_add(1);
        let (failures, considered) = (entry.health.failures(), entry.health.considered());
        #[cfg(feature = "mutants")]
        let keep = self.mutant.is(crate::mutant::Mutant::ReuseDead);
        #[cfg(not(feature = "mutants"))]
        let keep = false;
        let entry = self.pool.entry(id);
        let Some(lane) = entry.holder.and_then(|r| lane_at(&mut self.lanes, r)) else { return };
        if !keep {
            lane.drop_candidate(id);
        }
        lane.dead += 1;
        self.events.push_back(Event::ProxyDead {
            proxy: id,
            lane: lane.key,
            failures,
            considered,
            refused_after_rest,
            at: now,
        });
        if !lane.replacements_requested && lane.dead_above(self.config.replace_above_dead_percent) {
            lane.replacements_requested = true;
            self.events.push_back(Event::LaneNeedsReplacements {
                lane: lane.key,
                dead: lane.dead,
                total: lane.members.len() as u32,
            });
        }
    }

    /// A drained proxy starts its rest: from its last completion, or longer if a penalty says so.
    pub(super) fn start_rest(&mut self, id: ProxyId) {
        let policy = self.config.policy;
        #[cfg(feature = "mutants")]
        let short = self.mutant.is(crate::mutant::Mutant::ShortRest);
        let entry = self.pool.entry(id);
        let ready_at = policy
            .ready_after_lease(&entry.usage, entry.last_completion)
            .max(policy.rate_ready(&entry.usage, self.config.ip_rate))
            .max(entry.penalty_until);
        #[cfg(feature = "mutants")]
        let ready_at =
            if short { Instant::from_millis(ready_at.as_millis().saturating_sub(1)) } else { ready_at };
        entry.state = ProxyState::Resting { ready_at };
        entry.paused = false;
        if let Some(lane) = entry.holder.and_then(|r| lane_at(&mut self.lanes, r)) {
            lane.enqueue(&mut self.pool, id);
            self.events.push_back(Event::Rested { proxy: id, lane: Some(lane.key), until: ready_at });
        } else {
            self.pool.release(id);
            self.events.push_back(Event::Rested { proxy: id, lane: None, until: ready_at });
            self.pool.rearm(self.config.pool_min_available);
        }
    }

    /// A proxy leaves its (deallocated) lane for the pool.
    pub(super) fn release_member(&mut self, id: ProxyId) {
        let entry = self.pool.entry(id);
        entry.holder = None;
        entry.health = HealthWindow::default();
        entry.usage.charged = 0;
        entry.epoch = entry.epoch.wrapping_add(1);
        match entry.state {
            // A proxy paused mid-lease leaves with its lease: it rests like an active one.
            ProxyState::Resting { .. } if entry.paused => {
                entry.paused = false;
                entry.state = ProxyState::Draining;
                if entry.in_flight == 0 {
                    self.start_rest(id);
                }
            }
            ProxyState::Fresh | ProxyState::Resting { .. } => self.pool.release(id),
            ProxyState::Active => {
                entry.state = ProxyState::Draining;
                if entry.in_flight == 0 {
                    self.start_rest(id);
                }
            }
            ProxyState::Draining | ProxyState::Dead => {}
        }
    }
}

//! Time, injected: production reads the system clock, tests move a manual one, so no test
//! ever sleeps to let a TTL or an expiry pass.

use std::sync::{Arc, Mutex};

use time::{Duration, OffsetDateTime};

/// The clock every time-dependent decision reads.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    manual: Option<Arc<Mutex<OffsetDateTime>>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self { manual: None }
    }

    /// A clock that only moves when told to.
    pub fn manual(start: OffsetDateTime) -> Self {
        Self {
            manual: Some(Arc::new(Mutex::new(start))),
        }
    }

    pub fn now(&self) -> OffsetDateTime {
        match &self.manual {
            None => OffsetDateTime::now_utc(),
            Some(m) => match m.lock() {
                Ok(t) => *t,
                Err(poisoned) => *poisoned.into_inner(),
            },
        }
    }

    /// [`Clock::now`] at the precision PostgreSQL stores (microseconds), for instants a
    /// response returns before they are read back.
    pub fn now_stored(&self) -> OffsetDateTime {
        let t = self.now();
        let micros = t.nanosecond() / 1_000 * 1_000;
        t.replace_nanosecond(micros).unwrap_or(t)
    }

    /// Move a manual clock forward (no effect on the system clock).
    pub fn advance(&self, by: Duration) {
        if let Some(m) = &self.manual {
            let mut t = match m.lock() {
                Ok(t) => t,
                Err(poisoned) => poisoned.into_inner(),
            };
            *t += by;
        }
    }
}

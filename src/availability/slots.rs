//! The slot engine: which appointments a practitioner offers, DST-correct. Pure (no database,
//! no clock, no I/O): the caller passes the schedule, every company's busy time and `now`.
//!
//! Invariants:
//! - Weekly rules are civil times in the practitioner's IANA zone. A candidate whose civil
//!   start falls in a DST gap does not exist (it is skipped, never shifted); one in a fold is
//!   offered once, at the earlier instant. Lengths and buffers are absolute (real) minutes, so a
//!   60-minute slot lasts 60 minutes even across a transition.
//! - Intervals are half-open `[start, end)`: touching is not overlapping, so a slot may start
//!   when a busy block (plus buffer) ends.
//! - [`offered`] runs the very same generator and filters as [`expand`] on a one-instant range,
//!   so a booking check can never disagree with the list shown to the member.
//! - Returned instants are in UTC; [`rfc3339_in`] renders them in the practitioner's zone.
//!
//! Cost: busy time and time off are sorted and merged once per call, then each candidate is
//! one binary search in each (never a scan), and the kept candidates are sorted once to merge
//! duplicates: O(b·log b + c·(log b + log c)) for b busy intervals and c candidates.

use time::OffsetDateTime;

/// The longest range `expand` accepts (`to − from`), in days.
pub const MAX_RANGE_DAYS: i64 = 62;

const NANOS_PER_SECOND: i128 = 1_000_000_000;
const NANOS_PER_MINUTE: i128 = 60 * NANOS_PER_SECOND;
const NANOS_PER_HOUR: i128 = 60 * NANOS_PER_MINUTE;
const NANOS_PER_DAY: i128 = 24 * NANOS_PER_HOUR;

pub use super::model::Kind;

/// What a window offers. Minutes throughout.
///
/// A length of 0 is ignored, a step of 0 counts as no step, and an offer with no kinds offers
/// nothing (a slot that cannot be booked for any kind is not a slot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The appointment lengths offered; each yields its own series of slots.
    pub lengths: Vec<u16>,
    /// Distance between consecutive starts; `None`: each length steps by itself (back to back).
    pub step: Option<u16>,
    /// Free time required before the slot (checked against busy time only, not time off).
    pub buffer_before: u16,
    /// Free time required after the slot (checked against busy time only, not time off).
    pub buffer_after: u16,
    /// A slot starts at least this long after `now`.
    pub min_notice: u32,
    /// A slot starts at most this many 24-hour days after `now`.
    pub horizon_days: u16,
    /// The kinds a slot of this window can be booked for.
    pub kinds: Vec<Kind>,
}

/// A recurring window on one weekday, in civil time of the schedule's zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeeklyRule {
    /// ISO weekday: 1 = Monday … 7 = Sunday; any other value never matches.
    pub weekday: u8,
    /// Civil start of the window.
    pub start: time::Time,
    /// Civil end of the window, on the same local day; a rule with `start >= end` offers nothing.
    /// 23:59:59 (any fraction) stands for 24:00: the window runs to the next midnight.
    pub end: time::Time,
    /// What the window offers.
    pub offer: Offer,
}

/// A one-off window in absolute time (e.g. a Saturday morning), stepped from `starts_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraHours {
    pub starts_at: OffsetDateTime,
    pub ends_at: OffsetDateTime,
    pub offer: Offer,
}

/// Time the practitioner is away: no slot may overlap `[starts_at, ends_at)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeOff {
    pub starts_at: OffsetDateTime,
    pub ends_at: OffsetDateTime,
}

/// An IANA time zone from the bundled tz database.
///
/// Only constructed by [`Zone::parse`], so it always has an IANA name: fixed offsets and POSIX
/// strings would not follow future DST rule changes of the practitioner's place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone(jiff::tz::TimeZone);

impl Zone {
    /// The zone named `name` ("Europe/Paris", "UTC"), or `None` when it is not an IANA name of
    /// the bundled database (fixed offsets such as "+02:00" and POSIX TZ strings included).
    /// The lookup ignores ASCII case; [`Zone::name`] gives the database's spelling.
    pub fn parse(name: &str) -> Option<Zone> {
        let tz = jiff::tz::TimeZone::get(name).ok()?;
        tz.iana_name().is_some().then_some(Zone(tz))
    }

    /// The IANA name, as the database spells it.
    pub fn name(&self) -> &str {
        // `parse` only accepts zones that have an IANA name; "UTC" is never reached.
        self.0.iana_name().unwrap_or("UTC")
    }
}

/// Everything that decides a practitioner's offered time, apart from busy time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub time_zone: Zone,
    pub rules: Vec<WeeklyRule>,
    pub extra: Vec<ExtraHours>,
    pub time_off: Vec<TimeOff>,
}

/// A request for slots starting in `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotQuery {
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
    /// The current instant: notice and horizon count from it.
    pub now: OffsetDateTime,
    /// Only slots offered for this kind (and only the kinds of the windows that offer it).
    pub kind: Option<Kind>,
    /// Only slots of this length, in minutes.
    pub length: Option<u16>,
}

/// One bookable slot. `ends_at − starts_at` is exactly `length` minutes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// In UTC.
    pub starts_at: OffsetDateTime,
    /// In UTC.
    pub ends_at: OffsetDateTime,
    /// Minutes.
    pub length: u16,
    /// Sorted, unique, never empty: the union over every window offering this slot.
    pub kinds: Vec<Kind>,
}

/// Why a range was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SlotError {
    #[error("the range is empty: `to` must be after `from`")]
    EmptyRange,
    #[error("the range is longer than {MAX_RANGE_DAYS} days")]
    RangeTooLong,
}

/// The answer of the booking check [`offered`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// The slot is offered and free.
    Yes,
    /// The slot would be offered, but busy time (with its buffers) overlaps it.
    Busy,
    /// The schedule does not offer this slot (or notice, horizon or time off exclude it).
    No,
}

/// The slots starting in `[q.from, q.to)`, sorted by `(starts_at, length)`, unique on that
/// pair (the kinds of every window offering it are united).
///
/// busy: intervals [start, end) from every company, any order, may overlap.
pub fn expand(
    s: &Schedule,
    busy: &[(OffsetDateTime, OffsetDateTime)],
    q: &SlotQuery,
) -> Result<Vec<Slot>, SlotError> {
    let from = nanos(q.from);
    let to = nanos(q.to);
    if to <= from {
        return Err(SlotError::EmptyRange);
    }
    if to - from > i128::from(MAX_RANGE_DAYS) * NANOS_PER_DAY {
        return Err(SlotError::RangeTooLong);
    }
    let time_off = Intervals::time_off(&s.time_off);
    let busy = Intervals::busy(busy);
    let filter = Filter {
        from,
        to,
        now: nanos(q.now),
        kind: q.kind,
        length: q.length,
        time_off: &time_off,
        busy: &busy,
    };
    Ok(merge(candidates(s, &filter)))
}

/// Booking check: is a slot starting exactly at `starts_at` of `length` offered for `kind`? Yes;
/// Busy when offered only if busy time is ignored; else No.
///
/// Consistent with [`expand`]: the same generator and filters, on the range `[starts_at,
/// starts_at + 1 ns)`.
pub fn offered(
    s: &Schedule,
    busy: &[(OffsetDateTime, OffsetDateTime)],
    now: OffsetDateTime,
    starts_at: OffsetDateTime,
    length: u16,
    kind: Kind,
) -> Offered {
    let at = nanos(starts_at);
    let time_off = Intervals::time_off(&s.time_off);
    let busy = Intervals::busy(busy);
    let no_busy = Intervals::default();
    let mut filter = Filter {
        from: at,
        to: at + 1,
        now: nanos(now),
        kind: Some(kind),
        length: Some(length),
        time_off: &time_off,
        busy: &busy,
    };
    if !candidates(s, &filter).is_empty() {
        return Offered::Yes;
    }
    filter.busy = &no_busy;
    if candidates(s, &filter).is_empty() {
        Offered::No
    } else {
        Offered::Busy
    }
}

/// RFC 3339 with the zone's offset at that instant, e.g. "2027-03-28T09:00:00+02:00" (`Z` in UTC).
///
/// Fractional seconds appear only when non-zero. Instants outside jiff's range (the first and
/// last day of years ±9999) are clamped to it.
pub fn rfc3339_in(at: OffsetDateTime, zone: &Zone) -> String {
    let ts = timestamp(nanos(at));
    if zone.name() == "UTC" {
        // As every other time of the API: `Z`.
        return ts.to_string();
    }
    ts.display_with_offset(zone.0.to_offset(ts)).to_string()
}

/// A candidate slot before deduplication; its end is `start + length` minutes.
struct Candidate<'s> {
    start: i128,
    length: u16,
    kinds: &'s [Kind],
}

/// The query, reduced to what decides whether one candidate is kept.
struct Filter<'a> {
    from: i128,
    to: i128,
    now: i128,
    kind: Option<Kind>,
    length: Option<u16>,
    time_off: &'a Intervals,
    busy: &'a Intervals,
}

impl Filter<'_> {
    /// Whether a candidate of `offer` at `[start, start + length)` survives every filter.
    fn keeps(&self, offer: &Offer, start: i128, length: u16) -> bool {
        let end = start + minutes(length);
        start >= self.from
            && start < self.to
            && start >= self.now + minutes(offer.min_notice)
            && start <= self.now + i128::from(offer.horizon_days) * NANOS_PER_DAY
            && self.length.is_none_or(|wanted| wanted == length)
            && self.kind.is_none_or(|wanted| offer.kinds.contains(&wanted))
            && !self.time_off.overlaps(start, end)
            && !self.busy.overlaps(
                start - minutes(offer.buffer_before),
                end + minutes(offer.buffer_after),
            )
    }
}

/// Every candidate kept by `filter`, from the weekly rules then the extra hours, unsorted.
fn candidates<'s>(s: &'s Schedule, filter: &Filter<'_>) -> Vec<Candidate<'s>> {
    let mut out = Vec::new();
    weekly_candidates(s, filter, &mut out);
    for extra in &s.extra {
        extra_candidates(extra, filter, &mut out);
    }
    out
}

/// The candidates of the weekly rules, for every local date from the day before `from` to the
/// day after `to` (a slot starting in the range can only come from a rule of those dates).
fn weekly_candidates<'s>(s: &'s Schedule, filter: &Filter<'_>, out: &mut Vec<Candidate<'s>>) {
    if s.rules.is_empty() {
        return;
    }
    let tz = &s.time_zone.0;
    let first = tz.to_datetime(timestamp(filter.from)).date();
    let first = first.yesterday().unwrap_or(first);
    let last = tz.to_datetime(timestamp(filter.to)).date();
    let last = last.tomorrow().unwrap_or(last);
    let mut date = first;
    loop {
        let weekday = date.weekday().to_monday_one_offset();
        for rule in s
            .rules
            .iter()
            .filter(|rule| i8::try_from(rule.weekday) == Ok(weekday))
        {
            rule_candidates(tz, date, rule, filter, out);
        }
        if date >= last {
            break;
        }
        match date.tomorrow() {
            Ok(next) => date = next,
            Err(_) => break,
        }
    }
}

/// The candidates of one rule on one local date.
fn rule_candidates<'s>(
    tz: &jiff::tz::TimeZone,
    date: jiff::civil::Date,
    rule: &'s WeeklyRule,
    filter: &Filter<'_>,
    out: &mut Vec<Candidate<'s>>,
) {
    let offer = &rule.offer;
    if offer.kinds.is_empty() {
        return;
    }
    let civil_start = nanos_of_day(rule.start);
    // 23:59:59.x is how a rule says 24:00 (`time::Time` has no 24:00): the window ends at the
    // next midnight.
    let to_midnight = (rule.end.hour(), rule.end.minute(), rule.end.second()) == (23, 59, 59);
    let civil_end = if to_midnight {
        NANOS_PER_DAY
    } else {
        nanos_of_day(rule.end)
    };
    let end_civil = if to_midnight {
        date.tomorrow().ok().and_then(|next| civil_at(next, 0))
    } else {
        civil_at(date, civil_end)
    };
    // A window end in a gap resolves "compatibly" (as if the clock had not jumped), one in a
    // fold to its earlier instant.
    let Some(window_end) = end_civil
        .and_then(|end| tz.to_ambiguous_timestamp(end).compatible().ok())
        .map(jiff::Timestamp::as_nanosecond)
    else {
        return;
    };
    for &length in offer.lengths.iter().filter(|&&length| length > 0) {
        let step = minutes(step_of(offer, length));
        let mut civil = civil_start;
        while civil < civil_end {
            if let Some(start) = civil_at(date, civil).and_then(|dt| resolve_start(tz, dt))
                && start + minutes(length) <= window_end
                && filter.keeps(offer, start, length)
            {
                out.push(Candidate {
                    start,
                    length,
                    kinds: &offer.kinds,
                });
            }
            civil += step;
        }
    }
}

/// The candidates of one extra window, stepped in absolute time from its start. Only the
/// starts inside the query range are visited.
fn extra_candidates<'s>(extra: &'s ExtraHours, filter: &Filter<'_>, out: &mut Vec<Candidate<'s>>) {
    let offer = &extra.offer;
    if offer.kinds.is_empty() {
        return;
    }
    let window_start = nanos(extra.starts_at);
    let window_end = nanos(extra.ends_at);
    for &length in offer.lengths.iter().filter(|&&length| length > 0) {
        let step = minutes(step_of(offer, length));
        // The first step at or after `from`.
        let skipped = if filter.from > window_start {
            (filter.from - window_start + step - 1) / step
        } else {
            0
        };
        let mut start = window_start + skipped * step;
        while start < filter.to && start + minutes(length) <= window_end {
            if filter.keeps(offer, start, length) {
                out.push(Candidate {
                    start,
                    length,
                    kinds: &offer.kinds,
                });
            }
            start += step;
        }
    }
}

/// Sorts by `(start, length)` and unites the kinds of equal pairs.
fn merge(mut candidates: Vec<Candidate<'_>>) -> Vec<Slot> {
    candidates.sort_unstable_by_key(|c| (c.start, c.length));
    candidates
        .chunk_by(|a, b| a.start == b.start && a.length == b.length)
        .filter_map(|group| {
            let first = group.first()?;
            let mut kinds: Vec<Kind> = group.iter().flat_map(|c| c.kinds.iter().copied()).collect();
            kinds.sort_unstable();
            kinds.dedup();
            Some(Slot {
                starts_at: instant(first.start)?,
                ends_at: instant(first.start + minutes(first.length))?,
                length: first.length,
                kinds,
            })
        })
        .collect()
}

/// The instant of a candidate's civil start: none in a gap (that local time never happens),
/// the earlier one in a fold (the repeated hour is offered once).
fn resolve_start(tz: &jiff::tz::TimeZone, dt: jiff::civil::DateTime) -> Option<i128> {
    let ambiguous = tz.to_ambiguous_timestamp(dt);
    match ambiguous.offset() {
        jiff::tz::AmbiguousOffset::Gap { .. } => None,
        jiff::tz::AmbiguousOffset::Unambiguous { .. } | jiff::tz::AmbiguousOffset::Fold { .. } => {
            ambiguous.earlier().ok().map(jiff::Timestamp::as_nanosecond)
        }
    }
}

/// Sorted, disjoint, non-empty half-open intervals (nanoseconds since the Unix epoch).
#[derive(Debug, Default)]
struct Intervals(Vec<(i128, i128)>);

impl Intervals {
    fn busy(busy: &[(OffsetDateTime, OffsetDateTime)]) -> Intervals {
        Intervals::new(busy.iter().map(|&(start, end)| (nanos(start), nanos(end))))
    }

    fn time_off(time_off: &[TimeOff]) -> Intervals {
        Intervals::new(
            time_off
                .iter()
                .map(|off| (nanos(off.starts_at), nanos(off.ends_at))),
        )
    }

    /// Drops empty (and reversed) intervals, sorts, and merges overlapping or touching ones.
    fn new(intervals: impl Iterator<Item = (i128, i128)>) -> Intervals {
        let mut sorted: Vec<(i128, i128)> = intervals.filter(|(start, end)| start < end).collect();
        sorted.sort_unstable();
        let mut merged: Vec<(i128, i128)> = Vec::with_capacity(sorted.len());
        for (start, end) in sorted {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        Intervals(merged)
    }

    /// Whether `[start, end)` overlaps any interval. Ends are sorted too (the intervals are
    /// disjoint), so the first interval ending after `start` is the only one to look at.
    fn overlaps(&self, start: i128, end: i128) -> bool {
        if start >= end {
            return false;
        }
        let first_ending_after = self.0.partition_point(|&(_, e)| e <= start);
        self.0
            .get(first_ending_after)
            .is_some_and(|&(s, _)| s < end)
    }
}

/// The step of `length` in `offer`, in minutes: the offer's step, or the length itself.
fn step_of(offer: &Offer, length: u16) -> u16 {
    offer.step.filter(|&step| step > 0).unwrap_or(length)
}

fn minutes(m: impl Into<i128>) -> i128 {
    m.into() * NANOS_PER_MINUTE
}

fn nanos(at: OffsetDateTime) -> i128 {
    at.unix_timestamp_nanos()
}

/// The instant in UTC, if `time` can represent it.
fn instant(nanos: i128) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
}

/// The jiff timestamp, clamped to jiff's range (slightly narrower than `time`'s).
fn timestamp(nanos: i128) -> jiff::Timestamp {
    jiff::Timestamp::from_nanosecond(nanos).unwrap_or(if nanos < 0 {
        jiff::Timestamp::MIN
    } else {
        jiff::Timestamp::MAX
    })
}

fn nanos_of_day(t: time::Time) -> i128 {
    let (hour, minute, second, nano) = t.as_hms_nano();
    i128::from(hour) * NANOS_PER_HOUR
        + i128::from(minute) * NANOS_PER_MINUTE
        + i128::from(second) * NANOS_PER_SECOND
        + i128::from(nano)
}

/// The civil date-time `nanos_of_day` after midnight of `date` (`None` past the day's end).
fn civil_at(date: jiff::civil::Date, nanos_of_day: i128) -> Option<jiff::civil::DateTime> {
    let hour = i8::try_from(nanos_of_day / NANOS_PER_HOUR).ok()?;
    let minute = i8::try_from(nanos_of_day / NANOS_PER_MINUTE % 60).ok()?;
    let second = i8::try_from(nanos_of_day / NANOS_PER_SECOND % 60).ok()?;
    let nano = i32::try_from(nanos_of_day % NANOS_PER_SECOND).ok()?;
    let time = jiff::civil::Time::new(hour, minute, second, nano).ok()?;
    Some(time.to_datetime(date))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::{datetime, time};
    use time::{Duration, Time};

    fn zone(name: &str) -> Zone {
        Zone::parse(name).unwrap()
    }

    /// One length, back to back, no buffers, no notice, a long horizon, video only.
    fn offer(lengths: &[u16]) -> Offer {
        Offer {
            lengths: lengths.to_vec(),
            step: None,
            buffer_before: 0,
            buffer_after: 0,
            min_notice: 0,
            horizon_days: 3650,
            kinds: vec![Kind::Video],
        }
    }

    fn rule(weekday: u8, start: Time, end: Time, offer: Offer) -> WeeklyRule {
        WeeklyRule {
            weekday,
            start,
            end,
            offer,
        }
    }

    fn every_day(start: Time, end: Time, offer: &Offer) -> Vec<WeeklyRule> {
        (1..=7)
            .map(|weekday| rule(weekday, start, end, offer.clone()))
            .collect()
    }

    fn schedule(zone_name: &str, rules: Vec<WeeklyRule>) -> Schedule {
        Schedule {
            time_zone: zone(zone_name),
            rules,
            extra: vec![],
            time_off: vec![],
        }
    }

    const NOW: OffsetDateTime = datetime!(2027-01-01 00:00 UTC);

    fn query(from: OffsetDateTime, to: OffsetDateTime) -> SlotQuery {
        SlotQuery {
            from,
            to,
            now: NOW,
            kind: None,
            length: None,
        }
    }

    /// The slots' starts in the schedule's zone.
    fn local_starts(s: &Schedule, slots: &[Slot]) -> Vec<String> {
        slots
            .iter()
            .map(|slot| rfc3339_in(slot.starts_at, &s.time_zone))
            .collect()
    }

    fn starts(
        s: &Schedule,
        busy: &[(OffsetDateTime, OffsetDateTime)],
        q: &SlotQuery,
    ) -> Vec<String> {
        local_starts(s, &expand(s, busy, q).unwrap())
    }

    /// 09:00, 10:00, 11:00 each day in `[first, last]` (days of one month), with the offset
    /// `before` on days before `switch_day` and `after` from it on.
    fn nine_to_noon(
        month: &str,
        days: std::ops::RangeInclusive<u8>,
        switch_day: u8,
        before: &str,
        after: &str,
    ) -> Vec<String> {
        days.flat_map(|day| {
            let offset = if day < switch_day { before } else { after };
            ["09", "10", "11"].map(|hour| format!("2027-{month}-{day:02}T{hour}:00:00{offset}"))
        })
        .collect()
    }

    #[test]
    fn zone_parse_accepts_iana_names_only() {
        assert_eq!(zone("Europe/Paris").name(), "Europe/Paris");
        assert_eq!(zone("UTC").name(), "UTC");
        // The lookup ignores ASCII case; the name is the database's spelling.
        assert_eq!(zone("europe/paris").name(), "Europe/Paris");
        assert_eq!(zone("America/New_York").name(), "America/New_York");
        for refused in [
            "",
            "+02:00",
            "-05:00",
            "CET-1CEST,M3.5.0,M10.5.0/3",
            "Mars/Olympus",
        ] {
            assert!(Zone::parse(refused).is_none(), "{refused}");
        }
    }

    #[test]
    fn a_window_to_midnight_ends_at_the_next_midnight() {
        // 23:59:59.x is how a rule says 24:00; Sunday 2027-10-31 in Paris (after the change).
        let end = Time::from_hms_nano(23, 59, 59, 999_999_999).unwrap();
        let s = schedule(
            "Europe/Paris",
            vec![rule(7, time!(20:00), end, offer(&[240]))],
        );
        let q = query(
            datetime!(2027-10-31 00:00 UTC),
            datetime!(2027-11-01 00:00 UTC),
        );
        let got = expand(&s, &[], &q).unwrap();
        assert_eq!(local_starts(&s, &got), ["2027-10-31T20:00:00+01:00"]);
        assert_eq!(
            rfc3339_in(got[0].ends_at, &s.time_zone),
            "2027-11-01T00:00:00+01:00"
        );
    }

    #[test]
    fn paris_weekly_hours_keep_their_local_time_across_both_transitions() {
        let s = schedule(
            "Europe/Paris",
            every_day(time!(9:00), time!(12:00), &offer(&[60])),
        );
        // Spring forward on Sunday 2027-03-28 at 02:00: a week either side.
        let q = query(
            datetime!(2027-03-21 00:00 +1),
            datetime!(2027-04-05 00:00 +2),
        );
        let mut expected = nine_to_noon("03", 21..=31, 28, "+01:00", "+02:00");
        expected.extend(nine_to_noon("04", 1..=4, 1, "", "+02:00"));
        assert_eq!(starts(&s, &[], &q), expected);
        // Fall back on Sunday 2027-10-31 at 03:00.
        let q = query(
            datetime!(2027-10-24 00:00 +2),
            datetime!(2027-11-08 00:00 +1),
        );
        let mut expected = nine_to_noon("10", 24..=31, 31, "+02:00", "+01:00");
        expected.extend(nine_to_noon("11", 1..=7, 1, "", "+01:00"));
        assert_eq!(starts(&s, &[], &q), expected);
        // Every slot lasts 60 real minutes.
        for slot in expand(&s, &[], &q).unwrap() {
            assert_eq!(slot.ends_at - slot.starts_at, Duration::minutes(60));
            assert_eq!(slot.kinds, vec![Kind::Video]);
        }
    }

    #[test]
    fn paris_skipped_hour_has_no_slots_and_repeated_hour_is_offered_once() {
        let sunday_rule = |start, end| rule(7, start, end, offer(&[30]));
        let s = schedule("Europe/Paris", vec![sunday_rule(time!(1:30), time!(3:30))]);
        let q = query(
            datetime!(2027-03-27 00:00 UTC),
            datetime!(2027-03-30 00:00 UTC),
        );
        assert_eq!(
            starts(&s, &[], &q),
            ["2027-03-28T01:30:00+01:00", "2027-03-28T03:00:00+02:00"]
        );

        let s = schedule("Europe/Paris", vec![sunday_rule(time!(1:00), time!(3:00))]);
        let q = query(
            datetime!(2027-10-30 00:00 UTC),
            datetime!(2027-11-02 00:00 UTC),
        );
        assert_eq!(
            starts(&s, &[], &q),
            [
                "2027-10-31T01:00:00+02:00",
                "2027-10-31T01:30:00+02:00",
                "2027-10-31T02:00:00+02:00",
                "2027-10-31T02:30:00+02:00",
            ]
        );
    }

    #[test]
    fn new_york_weekly_hours_across_both_transitions() {
        let s = schedule(
            "America/New_York",
            every_day(time!(9:00), time!(12:00), &offer(&[60])),
        );
        // Spring forward on Sunday 2027-03-14 at 02:00.
        let q = query(
            datetime!(2027-03-07 00:00 -5),
            datetime!(2027-03-22 00:00 -4),
        );
        let expected = nine_to_noon("03", 7..=21, 14, "-05:00", "-04:00");
        assert_eq!(starts(&s, &[], &q), expected);
        // Fall back on Sunday 2027-11-07 at 02:00.
        let q = query(
            datetime!(2027-10-31 00:00 -4),
            datetime!(2027-11-15 00:00 -5),
        );
        let mut expected = nine_to_noon("10", 31..=31, 32, "-04:00", "");
        expected.extend(nine_to_noon("11", 1..=14, 7, "-04:00", "-05:00"));
        assert_eq!(starts(&s, &[], &q), expected);

        let sunday_rule = |start, end| rule(7, start, end, offer(&[30]));
        let s = schedule(
            "America/New_York",
            vec![sunday_rule(time!(1:30), time!(3:30))],
        );
        let q = query(
            datetime!(2027-03-13 00:00 UTC),
            datetime!(2027-03-16 00:00 UTC),
        );
        assert_eq!(
            starts(&s, &[], &q),
            ["2027-03-14T01:30:00-05:00", "2027-03-14T03:00:00-04:00"]
        );
        // The fold is 01:00–01:59: 01:00 and 01:30 once each, in daylight time.
        let s = schedule(
            "America/New_York",
            vec![sunday_rule(time!(0:30), time!(2:30))],
        );
        let q = query(
            datetime!(2027-11-06 00:00 UTC),
            datetime!(2027-11-09 00:00 UTC),
        );
        assert_eq!(
            starts(&s, &[], &q),
            [
                "2027-11-07T00:30:00-04:00",
                "2027-11-07T01:00:00-04:00",
                "2027-11-07T01:30:00-04:00",
                "2027-11-07T02:00:00-05:00",
            ]
        );
    }

    #[test]
    fn a_slot_across_the_transition_lasts_its_real_length() {
        // 01:00–04:00 on the spring-forward day holds two hours of real time.
        let s = schedule(
            "Europe/Paris",
            vec![rule(7, time!(1:00), time!(4:00), offer(&[60]))],
        );
        let q = query(
            datetime!(2027-03-28 00:00 UTC),
            datetime!(2027-03-29 00:00 UTC),
        );
        let slots = expand(&s, &[], &q).unwrap();
        assert_eq!(
            local_starts(&s, &slots),
            ["2027-03-28T01:00:00+01:00", "2027-03-28T03:00:00+02:00"]
        );
        assert_eq!(slots[0].ends_at, datetime!(2027-03-28 01:00 UTC));
        assert_eq!(slots[1].ends_at, datetime!(2027-03-28 02:00 UTC));
    }

    /// Monday 2027-03-01, 09:00–12:00 UTC, hourly video slots.
    fn monday_morning(offer: Offer) -> (Schedule, SlotQuery) {
        (
            schedule("UTC", vec![rule(1, time!(9:00), time!(12:00), offer)]),
            query(
                datetime!(2027-03-01 00:00 UTC),
                datetime!(2027-03-02 00:00 UTC),
            ),
        )
    }

    fn utc_hours(slots: &[Slot]) -> Vec<u8> {
        slots.iter().map(|slot| slot.starts_at.hour()).collect()
    }

    #[test]
    fn buffers_keep_slots_clear_of_busy_time_and_touching_is_allowed() {
        let (s, q) = monday_morning(Offer {
            buffer_before: 15,
            buffer_after: 15,
            ..offer(&[60])
        });
        let hours =
            |busy: &[(OffsetDateTime, OffsetDateTime)]| utc_hours(&expand(&s, busy, &q).unwrap());
        assert_eq!(hours(&[]), [9, 10, 11]);
        // Ends exactly where 09:00's buffer begins.
        assert_eq!(
            hours(&[(
                datetime!(2027-03-01 8:00 UTC),
                datetime!(2027-03-01 8:45 UTC)
            )]),
            [9, 10, 11]
        );
        assert_eq!(
            hours(&[(
                datetime!(2027-03-01 8:00 UTC),
                datetime!(2027-03-01 8:46 UTC)
            )]),
            [10, 11]
        );
        // Starts exactly where 09:00's buffer ends; overlaps the buffers of 10:00 and 11:00.
        assert_eq!(
            hours(&[(
                datetime!(2027-03-01 10:15 UTC),
                datetime!(2027-03-01 11:00 UTC)
            )]),
            [9]
        );
        // Several companies, unsorted, overlapping, one empty interval (ignored).
        let busy = [
            (
                datetime!(2027-03-01 12:15 UTC),
                datetime!(2027-03-01 13:00 UTC),
            ),
            (
                datetime!(2027-03-01 9:30 UTC),
                datetime!(2027-03-01 9:40 UTC),
            ),
            (
                datetime!(2027-03-01 9:35 UTC),
                datetime!(2027-03-01 9:50 UTC),
            ),
            (
                datetime!(2027-03-01 11:30 UTC),
                datetime!(2027-03-01 11:30 UTC),
            ),
        ];
        assert_eq!(hours(&busy), [11]);
        // Without buffers the touching neighbours are offered.
        let (s, q) = monday_morning(offer(&[60]));
        let busy = [(
            datetime!(2027-03-01 10:00 UTC),
            datetime!(2027-03-01 11:00 UTC),
        )];
        assert_eq!(utc_hours(&expand(&s, &busy, &q).unwrap()), [9, 11]);
    }

    #[test]
    fn minimum_notice_counts_from_now() {
        let (s, mut q) = monday_morning(Offer {
            min_notice: 60,
            ..offer(&[60])
        });
        q.now = datetime!(2027-03-01 8:00 UTC);
        assert_eq!(utc_hours(&expand(&s, &[], &q).unwrap()), [9, 10, 11]);
        q.now = datetime!(2027-03-01 8:00:01 UTC);
        assert_eq!(utc_hours(&expand(&s, &[], &q).unwrap()), [10, 11]);
    }

    #[test]
    fn horizon_counts_whole_days_from_now() {
        let (s, mut q) = monday_morning(Offer {
            horizon_days: 7,
            ..offer(&[60])
        });
        q.now = datetime!(2027-02-22 10:00 UTC);
        assert_eq!(utc_hours(&expand(&s, &[], &q).unwrap()), [9, 10]);
        q.now = datetime!(2027-02-22 9:59:59 UTC);
        assert_eq!(utc_hours(&expand(&s, &[], &q).unwrap()), [9]);
    }

    #[test]
    fn time_off_removes_overlapping_slots_without_buffers() {
        let (mut s, q) = monday_morning(Offer {
            buffer_before: 30,
            buffer_after: 30,
            ..offer(&[60])
        });
        s.time_off = vec![TimeOff {
            starts_at: datetime!(2027-03-01 10:00 UTC),
            ends_at: datetime!(2027-03-01 11:00 UTC),
        }];
        assert_eq!(utc_hours(&expand(&s, &[], &q).unwrap()), [9, 11]);
        s.time_off = vec![TimeOff {
            starts_at: datetime!(2027-02-27 00:00 UTC),
            ends_at: datetime!(2027-03-01 9:01 UTC),
        }];
        assert_eq!(utc_hours(&expand(&s, &[], &q).unwrap()), [10, 11]);
    }

    #[test]
    fn extra_hours_step_in_absolute_time() {
        let mut s = schedule("Europe/Paris", vec![]);
        s.extra = vec![ExtraHours {
            starts_at: datetime!(2027-03-02 14:10 UTC),
            ends_at: datetime!(2027-03-02 15:50 UTC),
            offer: Offer {
                step: Some(20),
                kinds: vec![Kind::Chat],
                ..offer(&[30])
            },
        }];
        let q = query(
            datetime!(2027-03-01 00:00 UTC),
            datetime!(2027-03-03 00:00 UTC),
        );
        let slots = expand(&s, &[], &q).unwrap();
        let starts: Vec<_> = slots.iter().map(|slot| slot.starts_at).collect();
        assert_eq!(
            starts,
            [
                datetime!(2027-03-02 14:10 UTC),
                datetime!(2027-03-02 14:30 UTC),
                datetime!(2027-03-02 14:50 UTC),
                datetime!(2027-03-02 15:10 UTC),
            ]
        );
        assert!(slots.iter().all(|slot| slot.kinds == [Kind::Chat]));
        // A range starting inside the window keeps the window's own grid.
        let q = query(
            datetime!(2027-03-02 14:31 UTC),
            datetime!(2027-03-02 15:10 UTC),
        );
        let starts: Vec<_> = expand(&s, &[], &q)
            .unwrap()
            .iter()
            .map(|slot| slot.starts_at)
            .collect();
        assert_eq!(starts, [datetime!(2027-03-02 14:50 UTC)]);
    }

    #[test]
    fn kind_and_length_filters() {
        let (mut s, mut q) = monday_morning(Offer {
            kinds: vec![Kind::Chat, Kind::Video],
            ..offer(&[30, 60])
        });
        s.rules.push(rule(
            1,
            time!(9:00),
            time!(12:00),
            Offer {
                kinds: vec![Kind::InPerson],
                ..offer(&[60])
            },
        ));
        let all = expand(&s, &[], &q).unwrap();
        assert_eq!(all.len(), 6 + 3);
        let nine = &all[..2];
        assert_eq!((nine[0].length, nine[1].length), (30, 60));
        assert_eq!(nine[0].kinds, [Kind::Video, Kind::Chat]);
        assert_eq!(nine[1].kinds, [Kind::Video, Kind::Chat, Kind::InPerson]);

        q.kind = Some(Kind::Audio);
        assert_eq!(expand(&s, &[], &q).unwrap(), []);
        q.kind = Some(Kind::InPerson);
        let in_person = expand(&s, &[], &q).unwrap();
        assert_eq!(utc_hours(&in_person), [9, 10, 11]);
        assert!(
            in_person
                .iter()
                .all(|slot| slot.length == 60 && slot.kinds == [Kind::InPerson])
        );
        q.kind = None;
        q.length = Some(30);
        let short = expand(&s, &[], &q).unwrap();
        assert_eq!(short.len(), 6);
        assert!(short.iter().all(|slot| slot.length == 30));
        q.length = Some(45);
        assert_eq!(expand(&s, &[], &q).unwrap(), []);
    }

    #[test]
    fn overlapping_rules_are_deduplicated_with_united_kinds() {
        let (mut s, q) = monday_morning(offer(&[60]));
        s.rules.push(rule(
            1,
            time!(10:00),
            time!(13:00),
            Offer {
                kinds: vec![Kind::Audio, Kind::Video],
                ..offer(&[60])
            },
        ));
        let slots = expand(&s, &[], &q).unwrap();
        assert_eq!(utc_hours(&slots), [9, 10, 11, 12]);
        let kinds: Vec<_> = slots.iter().map(|slot| slot.kinds.clone()).collect();
        assert_eq!(
            kinds,
            [
                vec![Kind::Video],
                vec![Kind::Video, Kind::Audio],
                vec![Kind::Video, Kind::Audio],
                vec![Kind::Video, Kind::Audio],
            ]
        );
    }

    #[test]
    fn degenerate_offers_offer_nothing() {
        let (s, q) = monday_morning(Offer {
            kinds: vec![],
            ..offer(&[60])
        });
        assert_eq!(expand(&s, &[], &q).unwrap(), []);
        let (s, q) = monday_morning(offer(&[0]));
        assert_eq!(expand(&s, &[], &q).unwrap(), []);
        // A zero step steps by the length.
        let (s, q) = monday_morning(Offer {
            step: Some(0),
            ..offer(&[60])
        });
        assert_eq!(utc_hours(&expand(&s, &[], &q).unwrap()), [9, 10, 11]);
        // start >= end, and a weekday outside 1..=7.
        let s = schedule(
            "UTC",
            vec![
                rule(1, time!(12:00), time!(9:00), offer(&[60])),
                rule(0, time!(9:00), time!(12:00), offer(&[60])),
                rule(8, time!(9:00), time!(12:00), offer(&[60])),
            ],
        );
        let q = query(
            datetime!(2027-03-01 00:00 UTC),
            datetime!(2027-03-15 00:00 UTC),
        );
        assert_eq!(expand(&s, &[], &q).unwrap(), []);
    }

    #[test]
    fn range_limits() {
        let (s, _) = monday_morning(offer(&[60]));
        let from = datetime!(2027-03-01 00:00 UTC);
        assert_eq!(
            expand(&s, &[], &query(from, from)),
            Err(SlotError::EmptyRange)
        );
        assert_eq!(
            expand(&s, &[], &query(from, from - Duration::seconds(1))),
            Err(SlotError::EmptyRange)
        );
        let longest = expand(&s, &[], &query(from, from + Duration::days(MAX_RANGE_DAYS))).unwrap();
        assert_eq!(longest.len(), 9 * 3);
        assert_eq!(
            expand(
                &s,
                &[],
                &query(
                    from,
                    from + Duration::days(MAX_RANGE_DAYS) + Duration::nanoseconds(1)
                )
            ),
            Err(SlotError::RangeTooLong)
        );
    }

    #[test]
    fn the_range_bounds_starts_only() {
        let (s, mut q) = monday_morning(offer(&[60]));
        q.from = datetime!(2027-03-01 9:00 UTC);
        q.to = datetime!(2027-03-01 11:00 UTC);
        assert_eq!(utc_hours(&expand(&s, &[], &q).unwrap()), [9, 10]);
        q.from = datetime!(2027-03-01 9:00:01 UTC);
        q.to = datetime!(2027-03-01 11:00:01 UTC);
        assert_eq!(utc_hours(&expand(&s, &[], &q).unwrap()), [10, 11]);
    }

    #[test]
    fn offered_answers_yes_busy_or_no() {
        let (mut s, _) = monday_morning(Offer {
            buffer_after: 10,
            min_notice: 60,
            ..offer(&[30, 60])
        });
        s.time_off = vec![TimeOff {
            starts_at: datetime!(2027-03-01 11:00 UTC),
            ends_at: datetime!(2027-03-01 12:00 UTC),
        }];
        let busy = [(
            datetime!(2027-03-01 10:05 UTC),
            datetime!(2027-03-01 10:30 UTC),
        )];
        let check = |at, length, kind| offered(&s, &busy, NOW, at, length, kind);
        assert_eq!(
            check(datetime!(2027-03-01 9:00 UTC), 60, Kind::Video),
            Offered::Busy
        );
        assert_eq!(
            check(datetime!(2027-03-01 9:00 UTC), 30, Kind::Video),
            Offered::Yes
        );
        assert_eq!(
            check(datetime!(2027-03-01 9:30 UTC), 30, Kind::Video),
            Offered::Busy
        );
        assert_eq!(
            check(datetime!(2027-03-01 10:00 UTC), 60, Kind::Video),
            Offered::Busy
        );
        assert_eq!(
            check(datetime!(2027-03-01 10:30 UTC), 30, Kind::Video),
            Offered::Yes
        );
        // Off the grid, wrong kind, length not offered, time off, another day.
        assert_eq!(
            check(datetime!(2027-03-01 9:15 UTC), 30, Kind::Video),
            Offered::No
        );
        assert_eq!(
            check(datetime!(2027-03-01 9:00:00.5 UTC), 30, Kind::Video),
            Offered::No
        );
        assert_eq!(
            check(datetime!(2027-03-01 9:00 UTC), 30, Kind::Audio),
            Offered::No
        );
        assert_eq!(
            check(datetime!(2027-03-01 9:00 UTC), 45, Kind::Video),
            Offered::No
        );
        assert_eq!(
            check(datetime!(2027-03-01 11:00 UTC), 30, Kind::Video),
            Offered::No
        );
        assert_eq!(
            check(datetime!(2027-03-02 9:00 UTC), 30, Kind::Video),
            Offered::No
        );
        // Notice applies to the booking check too.
        let late = offered(
            &s,
            &[],
            datetime!(2027-03-01 8:30 UTC),
            datetime!(2027-03-01 9:00 UTC),
            30,
            Kind::Video,
        );
        assert_eq!(late, Offered::No);
    }

    #[test]
    fn offered_knows_gaps_and_folds() {
        // Civil grid every 45 minutes from 01:00: 01:00, 01:45, 02:30, 03:15.
        let s = schedule(
            "Europe/Paris",
            vec![rule(
                7,
                time!(1:00),
                time!(4:00),
                Offer {
                    step: Some(45),
                    ..offer(&[30])
                },
            )],
        );
        let check = |at| offered(&s, &[], NOW, at, 30, Kind::Video);
        // 2027-03-28: 02:30 local does not exist; it is not shifted to 03:30 (+02:00).
        assert_eq!(check(datetime!(2027-03-28 1:45 +1)), Offered::Yes);
        assert_eq!(check(datetime!(2027-03-28 2:30 +1)), Offered::No);
        assert_eq!(check(datetime!(2027-03-28 3:30 +2)), Offered::No);
        assert_eq!(check(datetime!(2027-03-28 3:15 +2)), Offered::Yes);
        // 2027-10-31: 02:30 local happens twice; only the first (+02:00) is offered.
        assert_eq!(check(datetime!(2027-10-31 2:30 +2)), Offered::Yes);
        assert_eq!(check(datetime!(2027-10-31 2:30 +1)), Offered::No);
        assert_eq!(check(datetime!(2027-10-31 3:15 +1)), Offered::Yes);
    }

    const PROP_ZONES: [&str; 5] = [
        "UTC",
        "Europe/Paris",
        "America/New_York",
        "Australia/Lord_Howe", // a 30-minute DST shift
        "Asia/Kolkata",        // a half-hour offset
    ];
    const PROP_MONTHS: [OffsetDateTime; 4] = [
        datetime!(2027-03-01 00:00 UTC),
        datetime!(2027-04-01 00:00 UTC),
        datetime!(2027-10-01 00:00 UTC),
        datetime!(2027-11-01 00:00 UTC),
    ];
    const ALL_KINDS: [Kind; 4] = [Kind::Video, Kind::Audio, Kind::Chat, Kind::InPerson];
    const PROP_LENGTHS: [u16; 5] = [15, 30, 45, 60, 90];

    fn quarter(q: u8) -> Time {
        Time::from_hms(q / 4, (q % 4) * 15, 0).unwrap()
    }

    /// An offer with random lengths, step and kinds; buffers, notice and horizon are shared by
    /// the whole case so the properties can check them.
    fn arb_offer() -> impl Strategy<Value = Offer> {
        (
            proptest::sample::subsequence(PROP_LENGTHS.to_vec(), 1..=3),
            proptest::sample::select(vec![None, Some(10u16), Some(15), Some(30)]),
            proptest::sample::subsequence(ALL_KINDS.to_vec(), 1..=4),
        )
            .prop_map(|(lengths, step, kinds)| Offer {
                lengths,
                step,
                kinds,
                ..offer(&[])
            })
    }

    fn arb_rule() -> impl Strategy<Value = WeeklyRule> {
        (1u8..=7, 0u8..92, 1u8..40, arb_offer()).prop_map(|(weekday, start, quarters, offer)| {
            rule(
                weekday,
                quarter(start),
                quarter((start + quarters).min(95)),
                offer,
            )
        })
    }

    /// `(start, minutes)` pairs, starts on a 5-minute grid in the month.
    fn arb_intervals(
        count: std::ops::Range<usize>,
        max_minutes: i64,
    ) -> impl Strategy<Value = Vec<(i64, i64)>> {
        proptest::collection::vec((0i64..31 * 288, 1i64..max_minutes), count)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn expand_is_sorted_filtered_and_agrees_with_offered(
            zone_index in 0usize..PROP_ZONES.len(),
            month in proptest::sample::select(PROP_MONTHS.to_vec()),
            rules in proptest::collection::vec(arb_rule(), 1..6),
            extra in proptest::collection::vec((0i64..31 * 288, 30i64..600, arb_offer()), 0..3),
            busy in arb_intervals(0..20, 300),
            time_off in arb_intervals(0..3, 2000),
            (buffer_before, buffer_after) in (0u16..30, 0u16..30),
            (min_notice, horizon_days) in (0u32..600, 1u16..40),
            (from_steps, range_minutes, now_minutes) in (0i64..20 * 288, 1i64..31 * 1440, -7200i64..7200),
            probes in proptest::collection::vec(0i64..31 * 288, 40),
        ) {
            let at = |steps: i64| month + Duration::minutes(5 * steps);
            let shared = |offer: Offer| Offer { buffer_before, buffer_after, min_notice, horizon_days, ..offer };
            let s = Schedule {
                time_zone: zone(PROP_ZONES[zone_index]),
                rules: rules.into_iter().map(|r| WeeklyRule { offer: shared(r.offer), ..r }).collect(),
                extra: extra
                    .into_iter()
                    .map(|(start, minutes, offer)| ExtraHours {
                        starts_at: at(start),
                        ends_at: at(start) + Duration::minutes(minutes),
                        offer: shared(offer),
                    })
                    .collect(),
                time_off: time_off
                    .iter()
                    .map(|&(start, minutes)| TimeOff {
                        starts_at: at(start),
                        ends_at: at(start) + Duration::minutes(minutes),
                    })
                    .collect(),
            };
            let busy: Vec<_> = busy
                .iter()
                .map(|&(start, minutes)| (at(start), at(start) + Duration::minutes(minutes)))
                .collect();
            let from = at(from_steps);
            let now = from + Duration::minutes(now_minutes);
            let q = SlotQuery { from, to: from + Duration::minutes(range_minutes), now, kind: None, length: None };
            let slots = expand(&s, &busy, &q).unwrap();

            for pair in slots.windows(2) {
                prop_assert!((pair[0].starts_at, pair[0].length) < (pair[1].starts_at, pair[1].length));
            }
            for slot in &slots {
                prop_assert!(q.from <= slot.starts_at && slot.starts_at < q.to);
                prop_assert_eq!(slot.ends_at - slot.starts_at, Duration::minutes(slot.length.into()));
                prop_assert!(!slot.kinds.is_empty());
                prop_assert!(slot.kinds.windows(2).all(|k| k[0] < k[1]));
                prop_assert!(slot.starts_at >= now + Duration::minutes(min_notice.into()));
                prop_assert!(slot.starts_at <= now + Duration::days(horizon_days.into()));
                let guarded_start = slot.starts_at - Duration::minutes(buffer_before.into());
                let guarded_end = slot.ends_at + Duration::minutes(buffer_after.into());
                for &(busy_start, busy_end) in &busy {
                    prop_assert!(!(guarded_start < busy_end && busy_start < guarded_end));
                }
                for off in &s.time_off {
                    prop_assert!(!(slot.starts_at < off.ends_at && off.starts_at < slot.ends_at));
                }
                for &kind in &slot.kinds {
                    prop_assert_eq!(offered(&s, &busy, now, slot.starts_at, slot.length, kind), Offered::Yes);
                }
            }
            // The converse on probes: whatever `offered` accepts in the range, `expand` lists.
            for probe in probes.iter().map(|&p| from + Duration::minutes(5 * p)).filter(|&p| p < q.to) {
                for length in PROP_LENGTHS {
                    for kind in ALL_KINDS {
                        if offered(&s, &busy, now, probe, length, kind) == Offered::Yes {
                            prop_assert!(slots.iter().any(|slot| slot.starts_at == probe
                                && slot.length == length
                                && slot.kinds.contains(&kind)));
                        }
                    }
                }
            }
        }
    }
}

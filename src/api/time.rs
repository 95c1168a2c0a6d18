//! Datetimes in query strings, as the SDKs send them: RFC 3339, naive ISO 8601 (taken as
//! UTC) or a bare date.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

pub fn parse_datetime_micros(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return Some(dt.with_timezone(&Utc).timestamp_micros());
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return Some(naive.and_utc().timestamp_micros());
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return date
            .and_hms_opt(0, 0, 0)
            .map(|dt| dt.and_utc().timestamp_micros());
    }
    // "+00:00" arrives as " 00:00" when a client forgets to encode '+'.
    if text.len() > 6 && text.as_bytes()[text.len() - 6] == b' ' {
        let repaired = format!("{}+{}", &text[..text.len() - 6], &text[text.len() - 5..]);
        return DateTime::parse_from_rfc3339(&repaired)
            .ok()
            .map(|dt| dt.timestamp_micros());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::parse_datetime_micros;

    #[test]
    fn accepts_the_forms_clients_send() {
        let expected = Some(1_577_836_800_000_000);
        assert_eq!(parse_datetime_micros("2020-01-01T00:00:00Z"), expected);
        assert_eq!(parse_datetime_micros("2020-01-01T00:00:00+00:00"), expected);
        assert_eq!(parse_datetime_micros("2020-01-01T01:00:00+01:00"), expected);
        assert_eq!(parse_datetime_micros("2020-01-01T00:00:00"), expected);
        assert_eq!(parse_datetime_micros("2020-01-01T00:00:00.000"), expected);
        assert_eq!(parse_datetime_micros("2020-01-01"), expected);
        assert_eq!(parse_datetime_micros("2020-01-01T00:00:00 00:00"), expected);
        assert_eq!(parse_datetime_micros("yesterday"), None);
    }
}

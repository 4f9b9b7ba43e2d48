//! One JSON object per line, in the ecs-logging layout that logagent ships and
//! logtransfer lifts (see docs/dev/CONTRACTS.md).
//!
//! ```json
//! {"@timestamp":"2026-11-25T14:00:00.123456Z","log.level":"info","message":"…","ecs.version":"8.11.0",
//!  "log":{"logger":"my_app::db","origin":{"file":{"name":"src/db.rs","line":42},"function":"connect"}},
//!  "process":{"thread":{"name":"main","id":1}},"user":"ann"}
//! ```

use crate::format::{Format, FormatCtx, json_escape};
use crate::record::{Record, Value};

/// The ECS version written in `ecs.version`.
pub const ECS_VERSION: &str = "8.11.0";

/// Keys the layout writes itself; a field with one of these names is written as
/// `labels.<name>` so the object never has duplicate keys.
const RESERVED: &[&str] = &[
    "@timestamp",
    "log.level",
    "message",
    "ecs.version",
    "log",
    "process",
];

/// The JSON (ECS) format.
#[derive(Clone, Debug, Default)]
pub struct JsonFormat;

impl Format for JsonFormat {
    fn format(&self, r: &Record, ctx: &mut FormatCtx, buf: &mut Vec<u8>) {
        buf.extend_from_slice(b"{\"@timestamp\":\"");
        ctx.write_time(r.time_us, buf);
        buf.extend_from_slice(b"\",\"log.level\":\"");
        buf.extend_from_slice(r.level.as_str().as_bytes());
        buf.extend_from_slice(b"\",\"message\":\"");
        json_escape(buf, &r.message);
        buf.extend_from_slice(b"\",\"ecs.version\":\"");
        buf.extend_from_slice(ECS_VERSION.as_bytes());
        buf.extend_from_slice(b"\",\"log\":{\"logger\":\"");
        json_escape(buf, r.target());
        buf.extend_from_slice(b"\",\"origin\":{\"file\":{\"name\":\"");
        json_escape(buf, r.file());
        buf.extend_from_slice(b"\",\"line\":");
        buf.extend_from_slice(itoa::Buffer::new().format(r.line()).as_bytes());
        buf.push(b'}');
        if let Some(f) = r.function() {
            buf.extend_from_slice(b",\"function\":\"");
            json_escape(buf, f);
            buf.push(b'"');
        }
        buf.extend_from_slice(b"}},\"process\":{\"thread\":{");
        if let Some(n) = r.thread_name {
            buf.extend_from_slice(b"\"name\":\"");
            json_escape(buf, n);
            buf.extend_from_slice(b"\",");
        }
        buf.extend_from_slice(b"\"id\":");
        buf.extend_from_slice(itoa::Buffer::new().format(r.thread_id).as_bytes());
        buf.extend_from_slice(b"}}");
        for (k, v) in &r.fields {
            buf.extend_from_slice(b",\"");
            if RESERVED.contains(&k.as_ref()) {
                buf.extend_from_slice(b"labels.");
            }
            json_escape(buf, k);
            buf.extend_from_slice(b"\":");
            write_value(buf, v);
        }
        buf.extend_from_slice(b"}\n");
    }
}

fn write_value(buf: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Str(s) => {
            buf.push(b'"');
            json_escape(buf, s);
            buf.push(b'"');
        }
        Value::I64(i) => buf.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
        Value::U64(i) => buf.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
        // JSON has no NaN or infinity.
        Value::F64(f) if f.is_finite() => buf.extend_from_slice(f.to_string().as_bytes()),
        Value::F64(_) => buf.extend_from_slice(b"null"),
        Value::Bool(b) => buf.extend_from_slice(if *b { b"true" } else { b"false" }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::TimeZoneKind;
    use crate::record::Origin;
    use std::borrow::Cow;

    #[test]
    fn layout_matches_the_contract_exactly() {
        let r = Record {
            level: crate::Level::Info,
            time_us: 1_795_615_200_123_456,
            origin: Origin::other(
                "my_app::db",
                "src/db.rs",
                42,
                Some(Cow::Borrowed("connect")),
            ),
            thread_id: 1,
            thread_name: Some("main"),
            message: "said \"hi\"\n".into(),
            fields: vec![
                (Cow::Borrowed("user"), Value::Str(Cow::Borrowed("ann"))),
                (Cow::Borrowed("ms"), Value::U64(12)),
                (Cow::Borrowed("message"), Value::Bool(true)),
            ],
        };
        let mut ctx = FormatCtx::new(TimeZoneKind::Utc, false);
        let mut buf = Vec::new();
        JsonFormat.format(&r, &mut ctx, &mut buf);
        let s = String::from_utf8(buf).unwrap();
        assert_eq!(
            s,
            "{\"@timestamp\":\"2026-11-25T14:00:00.123456Z\",\"log.level\":\"info\",\"message\":\"said \\\"hi\\\"\\n\",\"ecs.version\":\"8.11.0\",\"log\":{\"logger\":\"my_app::db\",\"origin\":{\"file\":{\"name\":\"src/db.rs\",\"line\":42},\"function\":\"connect\"}},\"process\":{\"thread\":{\"name\":\"main\",\"id\":1}},\"user\":\"ann\",\"ms\":12,\"labels.message\":true}\n"
        );
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["log"]["origin"]["file"]["line"], 42);
        assert_eq!(v["message"], "said \"hi\"\n");
    }
}

//! The Kibana saved objects in `compose/kibana/` match what logtransfer writes: the data
//! view covers the index pattern of the default `[es] index`, on `@timestamp`; every
//! reference resolves; every field the visualizations and searches use is mapped by the
//! index template.

use std::collections::HashMap;

use logtransfer::config::Config;
use logtransfer::sinks::elasticsearch::encoder::IndexName;
use logtransfer::sinks::elasticsearch::template::index_template;
use serde_json::Value;

fn mapped(template: &Value, field: &str) -> bool {
    let mut node = &template["template"]["mappings"];
    for part in field.split('.') {
        node = &node["properties"][part];
    }
    node.get("type").is_some()
}

#[test]
fn saved_objects_fit_the_indexed_documents() {
    let text = include_str!("../../../compose/kibana/saved_objects.ndjson");
    let objects: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect();
    let by_id: HashMap<&str, &Value> = objects
        .iter()
        .map(|o| (o["id"].as_str().unwrap(), o))
        .collect();
    assert_eq!(by_id.len(), objects.len(), "ids are unique");

    let pattern = IndexName::parse(&Config::default().es.index)
        .unwrap()
        .pattern();
    let view = by_id["logs-data-view"];
    assert_eq!(view["type"], "index-pattern");
    assert_eq!(view["attributes"]["title"], pattern);
    assert_eq!(view["attributes"]["timeFieldName"], "@timestamp");

    for o in &objects {
        for r in o["references"].as_array().unwrap() {
            let target = by_id
                .get(r["id"].as_str().unwrap())
                .unwrap_or_else(|| panic!("{} references a missing {}", o["id"], r["id"]));
            assert_eq!(target["type"], r["type"]);
        }
    }
    let kinds: Vec<&str> = objects
        .iter()
        .map(|o| o["type"].as_str().unwrap())
        .collect();
    for kind in ["index-pattern", "search", "visualization", "dashboard"] {
        assert!(kinds.contains(&kind), "a {kind} is there");
    }

    let template = index_template(&pattern);
    let mut fields = Vec::new();
    for o in &objects {
        if let Some(cols) = o["attributes"]["columns"].as_array() {
            fields.extend(cols.iter().map(|c| c.as_str().unwrap().to_owned()));
        }
        if let Some(vis) = o["attributes"]["visState"].as_str() {
            let vis: Value = serde_json::from_str(vis).unwrap();
            for agg in vis["aggs"].as_array().unwrap() {
                if let Some(f) = agg["params"]["field"].as_str() {
                    fields.push(f.to_owned());
                }
            }
        }
    }
    assert!(fields.contains(&"log.level".to_owned()));
    assert!(fields.contains(&"host.name".to_owned()));
    for f in fields {
        assert!(
            mapped(&template, &f),
            "{f} is used in Kibana but not mapped"
        );
    }
    // The dashboard shows volume by level and by host.
    let dash = by_id["logs-overview"];
    let panels: Vec<Value> =
        serde_json::from_str(dash["attributes"]["panelsJSON"].as_str().unwrap()).unwrap();
    assert_eq!(panels.len(), 3);
}

//! One result line: a flat JSON object (`--json`) or `key: value` text.

pub struct Json {
    fields: Vec<(&'static str, String)>,
}

impl Json {
    pub fn new(label: &str, mode: &str) -> Json {
        let mut j = Json { fields: Vec::new() };
        j.str("label", label);
        j.str("mode", mode);
        j
    }

    pub fn num(&mut self, key: &'static str, v: f64, decimals: usize) {
        let s = if v.is_finite() {
            format!("{v:.decimals$}")
        } else {
            "null".into()
        };
        self.fields.push((key, s));
    }

    pub fn opt(&mut self, key: &'static str, v: Option<f64>, decimals: usize) {
        match v {
            Some(v) => self.num(key, v, decimals),
            None => self.fields.push((key, "null".into())),
        }
    }

    pub fn str(&mut self, key: &'static str, v: &str) {
        let mut s = String::with_capacity(v.len() + 2);
        s.push('"');
        for c in v.chars() {
            match c {
                '"' => s.push_str("\\\""),
                '\\' => s.push_str("\\\\"),
                c if (c as u32) < 0x20 => s.push_str(&format!("\\u{:04x}", c as u32)),
                c => s.push(c),
            }
        }
        s.push('"');
        self.fields.push((key, s));
    }

    /// A nested object written as is (already JSON).
    pub fn raw(&mut self, key: &'static str, json: String) {
        self.fields.push((key, json));
    }

    pub fn print(&self, json: bool) {
        if json {
            let body: Vec<String> = self
                .fields
                .iter()
                .map(|(k, v)| format!("\"{k}\":{v}"))
                .collect();
            println!("{{{}}}", body.join(","));
        } else {
            for (k, v) in &self.fields {
                println!("{k:>28}: {}", v.trim_matches('"'));
            }
        }
    }
}

//! Redis reply types as Upstash returns them in JSON, without guessing: strings stay strings.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Nil,
    Int(i64),
    Str(String),
    Array(Vec<Value>),
}

impl Value {
    pub fn from_json(v: &serde_json::Value) -> Result<Value, String> {
        Ok(match v {
            serde_json::Value::Null => Value::Nil,
            serde_json::Value::String(s) => Value::Str(s.clone()),
            serde_json::Value::Number(n) => Value::Int(n.as_i64().ok_or_else(|| format!("non-integer number {n}"))?),
            serde_json::Value::Array(a) => Value::Array(a.iter().map(Value::from_json).collect::<Result<_, _>>()?),
            other => return Err(format!("unexpected JSON in a result: {other}")),
        })
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }
}

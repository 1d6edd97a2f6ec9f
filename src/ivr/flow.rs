//! TEMPORARY stub until the IVR branch lands (replaced wholesale at merge).
use crate::lang::Lang;
use std::path::Path;
use std::sync::Arc;

#[derive(Debug)]
pub struct Flow {
    pub name: String,
}

#[derive(Debug, Default)]
pub struct FlowSet {
    flows: Vec<Arc<Flow>>,
}

impl FlowSet {
    pub fn for_dialed(&self, dialed: &str) -> Option<Arc<Flow>> {
        self.flows.iter().find(|f| f.name == dialed).cloned()
    }
    pub fn len(&self) -> usize {
        self.flows.len()
    }
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }
}

#[derive(Debug)]
pub struct FlowError(String);
impl std::fmt::Display for FlowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub fn load_flows(
    _dir: &Path,
    _prompt_exists: &dyn Fn(Lang, &str) -> bool,
    _lookup_sql_ok: &dyn Fn(&str) -> Result<(), String>,
) -> Result<FlowSet, Vec<FlowError>> {
    Ok(FlowSet {
        flows: vec![
            Arc::new(Flow {
                name: "12333".into(),
            }),
            Arc::new(Flow {
                name: "12345".into(),
            }),
        ],
    })
}

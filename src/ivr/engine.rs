//! TEMPORARY stub until the IVR branch lands (replaced wholesale at merge).
use super::flow::Flow;
use crate::lang::Lang;
use crate::store::SqlValue;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug)]
pub enum IvrAction {
    Play {
        id: u64,
        lang: Lang,
        prompts: Vec<String>,
        interruptible: bool,
    },
    StopPlayback,
    Lookup {
        sql: String,
        params: Vec<SqlValue>,
    },
    RecordVoiceMessage {
        max: Duration,
        terminator: char,
    },
    Queue {
        queue: String,
        priority: i32,
    },
    Hangup {
        reason: String,
    },
}

#[derive(Debug)]
pub struct IvrSession {
    path: Vec<String>,
    digits: String,
}

impl IvrSession {
    pub fn new(_flow: Arc<Flow>, _start: Instant, _wall: chrono::DateTime<chrono::Utc>) -> Self {
        IvrSession {
            path: vec![],
            digits: String::new(),
        }
    }
    pub fn start(&mut self, _now: Instant) -> Vec<IvrAction> {
        self.path.push("welcome".into());
        vec![IvrAction::Play {
            id: 1,
            lang: Lang::Zh,
            prompts: vec!["welcome_12333".into(), "choose_language".into()],
            interruptible: true,
        }]
    }
    pub fn on_digit(&mut self, _now: Instant, d: char) -> Vec<IvrAction> {
        self.digits.push(d);
        vec![IvrAction::Play {
            id: 2,
            lang: Lang::Zh,
            prompts: vec!["menu_12333_main".into()],
            interruptible: true,
        }]
    }
    pub fn on_playback_done(&mut self, _now: Instant, _id: u64) -> Vec<IvrAction> {
        vec![]
    }
    pub fn on_lookup_result(
        &mut self,
        _now: Instant,
        _r: Result<Option<BTreeMap<String, SqlValue>>, String>,
    ) -> Vec<IvrAction> {
        vec![]
    }
    pub fn on_voice_message_done(&mut self, _now: Instant, _saved: bool) -> Vec<IvrAction> {
        vec![]
    }
    pub fn on_queue_unavailable(&mut self, _now: Instant) -> Vec<IvrAction> {
        vec![]
    }
    pub fn on_timer(&mut self, _now: Instant) -> Vec<IvrAction> {
        vec![]
    }
    pub fn deadline(&self) -> Option<Instant> {
        None
    }
    pub fn language(&self) -> Lang {
        Lang::Zh
    }
    pub fn path(&self) -> &[String] {
        &self.path
    }
    pub fn result(&self) -> Option<&str> {
        None
    }
}

//! The Lua scripts, each prepended with the generated field tables and the shared prelude.

use redis::Script;

use super::contract;

const PRELUDE: &str = include_str!("../lua/prelude.lua");

pub struct Scripts {
    pub join: Script,
    pub leave: Script,
    pub add_stream: Script,
    pub remove_stream: Script,
    pub stream_extra_info: Script,
    pub room_extra_info: Script,
    pub publish: Script,
    pub renew_lease: Script,
    pub reap: Script,
    pub kick: Script,
    pub close_room: Script,
    pub stream_muted: Script,
    pub publisher_muted: Script,
}

impl Scripts {
    pub fn load() -> Self {
        let header = contract::lua_tables();
        let script = |body: &str| Script::new(&format!("{header}{PRELUDE}\n{body}"));
        Scripts {
            join: script(include_str!("../lua/join.lua")),
            leave: script(include_str!("../lua/leave.lua")),
            add_stream: script(include_str!("../lua/add_stream.lua")),
            remove_stream: script(include_str!("../lua/remove_stream.lua")),
            stream_extra_info: script(include_str!("../lua/stream_extra_info.lua")),
            room_extra_info: script(include_str!("../lua/room_extra_info.lua")),
            publish: script(include_str!("../lua/publish.lua")),
            renew_lease: script(include_str!("../lua/renew_lease.lua")),
            reap: script(include_str!("../lua/reap.lua")),
            kick: script(include_str!("../lua/kick.lua")),
            close_room: script(include_str!("../lua/close_room.lua")),
            stream_muted: script(include_str!("../lua/stream_muted.lua")),
            publisher_muted: script(include_str!("../lua/publisher_muted.lua")),
        }
    }

    pub fn all(&self) -> [(&'static str, &Script); 13] {
        [
            ("join", &self.join),
            ("leave", &self.leave),
            ("add_stream", &self.add_stream),
            ("remove_stream", &self.remove_stream),
            ("stream_extra_info", &self.stream_extra_info),
            ("room_extra_info", &self.room_extra_info),
            ("publish", &self.publish),
            ("renew_lease", &self.renew_lease),
            ("reap", &self.reap),
            ("kick", &self.kick),
            ("close_room", &self.close_room),
            ("stream_muted", &self.stream_muted),
            ("publisher_muted", &self.publisher_muted),
        ]
    }
}

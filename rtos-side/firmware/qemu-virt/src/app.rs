//! The application is the demo shell of `micrun-rtos`; this is what it needs to
//! know about the board. It runs in raw mode (`raw_mode.rs`, console bytes straight
//! on the UART) or behind the micrun agent (`agent_mode.rs`).

use micrun_proto::Stats;
use micrun_rtos::demo;

use crate::board::Board;

pub const BOARD_NAME: &str = "qemu-virt";
pub const OS_NAME: &str = "bare-metal";

impl demo::Board for Board {
    fn uptime_ms(&self) -> u64 {
        Board::uptime_ms(self)
    }

    fn stats(&self) -> Stats {
        Stats {
            uptime_ms: Board::uptime_ms(self),
            cpu_load_permille: self.load_permille(),
            mem_used_kib: self.mem_used_kib(),
            mem_total_kib: self.mem_total_kib(),
        }
    }

    fn name(&self) -> &str {
        BOARD_NAME
    }

    fn os(&self) -> &str {
        OS_NAME
    }
}

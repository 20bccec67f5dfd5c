//! Raw mode (cargo feature `raw`): the link carries console bytes as they are.

use core::fmt::Write;

use micrun_rtos::demo::{Action, Shell};

use crate::board::{Board, IDLE_TICK_MS};
use crate::pl011::Pl011;
use crate::power::power_off;

/// Raw mode: the shell reads and writes the UART itself; `exit` prints
/// `exit <code>` and powers off (the pedestal sees the machine stop).
pub fn run_raw(mut board: Board, mut uart: Pl011) -> ! {
    let mut shell = Shell::new();
    shell.start(&board);
    let mut buf = [0u8; 64];
    loop {
        board.update_load();
        let room = shell.input_room().min(buf.len());
        let n = uart.read_into(&mut buf[..room]);
        shell.feed(&buf[..n]);
        match shell.poll(&board, &mut uart) {
            Action::None => {}
            Action::Exit(code) => {
                let _ = write!(uart, "exit {code}\r\n");
                power_off();
            }
            Action::Panic => panic!("panic command"),
            Action::Hang => board.hang(),
        }
        if n == 0 && shell.is_idle() {
            board.idle(&uart, IDLE_TICK_MS);
        }
    }
}

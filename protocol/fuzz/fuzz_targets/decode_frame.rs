//! Fuzzes `decode_frame` on arbitrary byte streams: it must never panic,
//! must not allocate while waiting for more bytes (whatever size a frame
//! header claims), and whatever it decodes must round-trip.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use warren_protocol::decode_frame;

mod harness;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// Counts allocations on this thread, to check that an incomplete frame
/// costs none.
struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

fuzz_target!(|data: &[u8]| {
    harness::check(data);

    // The input as a lone frame prefix: if it is incomplete, deciding so
    // must allocate nothing, with or without a frame size limit.
    for frame_max in [0, u32::MAX] {
        let mut buf = BytesMut::from(data);
        let before = allocations();
        let result = decode_frame(&mut buf, frame_max);
        let after = allocations();
        if matches!(result, Ok(None)) {
            assert_eq!(after, before, "an incomplete frame allocated");
        }
    }
});

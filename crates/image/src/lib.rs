//! MCUboot image format (header, TLVs, trailer): parse and stream-verify without allocation;
//! with `std`, build and sign images and handle keys in imgtool's formats.
#![cfg_attr(not(feature = "std"), no_std)]

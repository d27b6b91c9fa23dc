//! Decoding literal text (strings, numbers) into values. (Being implemented.)

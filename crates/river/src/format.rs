//! The formatter. (Being implemented.)

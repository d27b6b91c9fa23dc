//! Tokens. (Being implemented.)

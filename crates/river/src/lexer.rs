//! The lexer. (Being implemented.)

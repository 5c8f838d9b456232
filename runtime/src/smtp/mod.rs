//! SMTP (placeholder).

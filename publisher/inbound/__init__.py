"""What comes back after the 250: bounces, complaints and unsubscribe mail.

``classify`` turns one inbound message into facts without any I/O; the SMTP
and IMAP front ends (``server``, ``imap``) feed it and apply what it returns.
"""

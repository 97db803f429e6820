-- Sample calls shipped with the function, loaded once into a new local database.
INSERT OR IGNORE INTO calls (id, contact_name, account_name, started_at, duration_seconds, outcome, notes, created_at) VALUES
    ('00000000-0000-4000-8000-000000000001', 'Ada Lovelace', 'Analytical Engines Ltd', '2024-11-04T09:00:00.000000Z', 693, 'connected', 'Discussed renewal', '2024-11-04T09:11:38.000000Z'),
    ('00000000-0000-4000-8000-000000000002', 'Alan Turing', 'Bletchley Park', '2024-11-04T16:13:00.000000Z', 338, 'voicemail', 'Left a message', '2024-11-04T16:18:43.000000Z'),
    ('00000000-0000-4000-8000-000000000003', 'Grace Hopper', 'Navy', '2024-11-04T23:26:00.000000Z', 838, 'no-answer', 'Asked for a demo next week', '2024-11-04T23:40:03.000000Z'),
    ('00000000-0000-4000-8000-000000000004', 'Katherine Johnson', 'NASA Langley', '2024-11-05T06:39:00.000000Z', 1363, 'connected', 'Pricing questions', '2024-11-05T07:01:48.000000Z'),
    ('00000000-0000-4000-8000-000000000005', 'Edsger Dijkstra', 'Eindhoven University', '2024-11-05T13:52:00.000000Z', 128, 'follow-up', 'Sent the contract', '2024-11-05T13:54:13.000000Z'),
    ('00000000-0000-4000-8000-000000000006', 'Barbara Liskov', 'MIT', '2024-11-05T21:05:00.000000Z', 178, 'connected', NULL, '2024-11-05T21:08:03.000000Z'),
    ('00000000-0000-4000-8000-000000000007', 'Donald Knuth', 'Stanford', '2024-11-06T04:18:00.000000Z', 1711, 'voicemail', 'Discussed renewal', '2024-11-06T04:46:36.000000Z'),
    ('00000000-0000-4000-8000-000000000008', 'Margaret Hamilton', 'Apollo Guidance', '2024-11-06T11:31:00.000000Z', 1127, 'no-answer', 'Left a message', '2024-11-06T11:49:52.000000Z'),
    ('00000000-0000-4000-8000-000000000009', 'Linus Torvalds', 'Linux Foundation', '2024-11-06T18:44:00.000000Z', 222, 'connected', 'Asked for a demo next week', '2024-11-06T18:47:47.000000Z'),
    ('00000000-0000-4000-8000-000000000010', 'Radia Perlman', 'Intel', '2024-11-07T01:57:00.000000Z', 778, 'follow-up', 'Pricing questions', '2024-11-07T02:10:03.000000Z'),
    ('00000000-0000-4000-8000-000000000011', 'Ada Lovelace', 'Analytical Engines Ltd', '2024-11-07T09:10:00.000000Z', 1223, 'connected', 'Sent the contract', '2024-11-07T09:30:28.000000Z'),
    ('00000000-0000-4000-8000-000000000012', 'Alan Turing', 'Bletchley Park', '2024-11-07T16:23:00.000000Z', 148, 'voicemail', NULL, '2024-11-07T16:25:33.000000Z'),
    ('00000000-0000-4000-8000-000000000013', 'Grace Hopper', 'Navy', '2024-11-07T23:36:00.000000Z', 1069, 'no-answer', 'Discussed renewal', '2024-11-07T23:53:54.000000Z'),
    ('00000000-0000-4000-8000-000000000014', 'Katherine Johnson', 'NASA Langley', '2024-11-08T06:49:00.000000Z', 469, 'connected', 'Left a message', '2024-11-08T06:56:54.000000Z'),
    ('00000000-0000-4000-8000-000000000015', 'Edsger Dijkstra', 'Eindhoven University', '2024-11-08T14:02:00.000000Z', 106, 'follow-up', 'Asked for a demo next week', '2024-11-08T14:03:51.000000Z');

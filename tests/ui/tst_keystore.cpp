// FileKeyStore: round trip, owner-only permissions, damaged files.
#include "keystore.h"

#include <QFile>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QTest>

using namespace keyrelay;

class TestKeyStore : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() { QStandardPaths::setTestModeEnabled(true); }

    void roundTrip()
    {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        FileKeyStore store(dir.filePath(QStringLiteral("sub/keys.json")));
        QList<ApiKey> keys;
        keys.append({ QStringLiteral("sk-first-0000000000000001"), QStringLiteral("work"), true });
        keys.append({ QStringLiteral("sk-second-000000000000002"), QString(), false });
        keys.append({ QStringLiteral("sk-\"quoted\"\\slash-ünï"), QStringLiteral("标签"), true });
        QString error;
        QVERIFY2(store.save(keys, &error), qPrintable(error));

        FileKeyStore reopened(dir.filePath(QStringLiteral("sub/keys.json")));
        QList<ApiKey> loaded;
        QVERIFY2(reopened.load(&loaded, &error), qPrintable(error));
        QCOMPARE(loaded.size(), keys.size());
        for (int i = 0; i < keys.size(); ++i) {
            QCOMPARE(loaded.at(i).secret, keys.at(i).secret);
            QCOMPARE(loaded.at(i).label, keys.at(i).label);
            QCOMPARE(loaded.at(i).enabled, keys.at(i).enabled);
        }
        // Saving again replaces, never appends.
        keys.removeFirst();
        QVERIFY(store.save(keys, &error));
        QVERIFY(reopened.load(&loaded, &error));
        QCOMPARE(loaded.size(), 2);
    }

    void ownerOnlyPermissions()
    {
        QTemporaryDir dir;
        const QString path = dir.filePath(QStringLiteral("keys.json"));
        // A pre-existing world-readable file gets tightened by the next save.
        QFile loose(path);
        QVERIFY(loose.open(QIODevice::WriteOnly));
        loose.write("{\"keys\":[]}");
        loose.close();
        QVERIFY(QFile::setPermissions(
            path, QFile::ReadOwner | QFile::WriteOwner | QFile::ReadOther | QFile::ReadGroup));

        FileKeyStore store(path);
        QString error;
        QVERIFY(store.save({ { QStringLiteral("sk-secret-abcdefabcdef"), QString(), true } }, &error));
        const QFile::Permissions permissions = QFile::permissions(path);
        QCOMPARE(permissions
                     & (QFile::ReadOwner | QFile::WriteOwner | QFile::ExeOwner | QFile::ReadGroup
                        | QFile::WriteGroup | QFile::ExeGroup | QFile::ReadOther | QFile::WriteOther
                        | QFile::ExeOther),
                 QFile::ReadOwner | QFile::WriteOwner);
    }

    void missingFileIsEmpty()
    {
        QTemporaryDir dir;
        FileKeyStore store(dir.filePath(QStringLiteral("none.json")));
        QList<ApiKey> keys { { QStringLiteral("stale"), QString(), true } };
        QString error;
        QVERIFY(store.load(&keys, &error));
        QVERIFY(keys.isEmpty());
        QVERIFY(error.isEmpty());
    }

    void damagedFile_data()
    {
        QTest::addColumn<QByteArray>("content");
        QTest::newRow("garbage") << QByteArray("\x00\xff not json at all", 18);
        QTest::newRow("truncated") << QByteArray("{\"version\":1,\"keys\":[{\"secret\":\"sk-abc");
        QTest::newRow("array") << QByteArray("[1,2,3]");
        QTest::newRow("no keys") << QByteArray("{\"version\":1}");
        QTest::newRow("keys not a list") << QByteArray("{\"keys\":\"sk-abc\"}");
        QTest::newRow("empty") << QByteArray();
    }

    void damagedFile()
    {
        QFETCH(QByteArray, content);
        QTemporaryDir dir;
        const QString path = dir.filePath(QStringLiteral("keys.json"));
        QFile file(path);
        QVERIFY(file.open(QIODevice::WriteOnly));
        file.write(content);
        file.close();
        FileKeyStore store(path);
        QList<ApiKey> keys;
        QString error;
        QVERIFY(!store.load(&keys, &error));
        QVERIFY(keys.isEmpty());
        QVERIFY(!error.isEmpty());
        QVERIFY(error.contains(path));
    }

    void badEntriesAreSkipped()
    {
        QTemporaryDir dir;
        const QString path = dir.filePath(QStringLiteral("keys.json"));
        QFile file(path);
        QVERIFY(file.open(QIODevice::WriteOnly));
        file.write("{\"keys\":[{\"secret\":\"sk-good-1234567890\"},{\"label\":\"no secret\"},42]}");
        file.close();
        FileKeyStore store(path);
        QList<ApiKey> keys;
        QString error;
        QVERIFY(!store.load(&keys, &error));
        QCOMPARE(keys.size(), 1);
        QCOMPARE(keys.first().secret, QStringLiteral("sk-good-1234567890"));
        QVERIFY(keys.first().enabled);
        QVERIFY(!error.contains(QStringLiteral("sk-good")));
    }

    void unwritableLocationReportsError()
    {
        QTemporaryDir dir;
        const QString blocker = dir.filePath(QStringLiteral("file"));
        QFile file(blocker);
        QVERIFY(file.open(QIODevice::WriteOnly));
        file.close();
        FileKeyStore store(blocker + QStringLiteral("/keys.json")); // a folder that is a file
        QString error;
        QVERIFY(!store.save({ { QStringLiteral("sk-x-1234567890"), QString(), true } }, &error));
        QVERIFY(!error.isEmpty());
    }
};

QTEST_GUILESS_MAIN(TestKeyStore)
#include "tst_keystore.moc"

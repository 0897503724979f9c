// Keys at rest: the system keychain path (a private D-Bus session with an unlocked gnome-keyring-daemon),
// a keychain that never answers (bounded), and the fallback to the 0600 files without any D-Bus session.
// The wrapper script (with-dbus-session.sh) or CTest's environment selects the case through
// KEYRELAY_KEYCHAIN_TEST=keyring|silent|nobus.
#include "keychain.h"
#include "keychainstores.h"
#include "proxycredentials.h"
#include "secretstore.h"
#include "settingsregistry.h"
#include "userstores.h"
#include "verifiedstores.h"

#include <QDBusConnection>
#include <QDBusConnectionInterface>
#include <QDBusMessage>
#include <QDBusObjectPath>
#include <QDBusVariant>
#include <QDBusVirtualObject>
#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QMutex>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QTest>
#include <QTimer>

using namespace keyrelay;

namespace {

// Everything any code in this process logs, to prove that no whole key or password is ever in it.
QMutex s_logMutex;
QStringList s_log;
QtMessageHandler s_previousHandler = nullptr;

void captureMessage(QtMsgType type, const QMessageLogContext &context, const QString &message)
{
    {
        QMutexLocker lock(&s_logMutex);
        s_log << message;
    }
    if (s_previousHandler)
        s_previousHandler(type, context, message);
}

QList<ApiKey> sampleKeys()
{
    return { { QStringLiteral("sk-keychain-first-0000000000000001"), QStringLiteral("work"), true },
             { QStringLiteral("sk-keychain-second-000000000000002"), QString(), false },
             { QStringLiteral("sk-\"quoted\"\\slash-ünï-0000000003"), QStringLiteral("标签"), true } };
}

const QString ProxyPassword = QStringLiteral("pr0xy-p@ss:w0rd-secret");

/// Only the owner may read or write @p path.
bool ownerOnly(const QString &path)
{
    const QFile::Permissions permissions = QFile::permissions(path);
    return permissions.testFlag(QFile::ReadOwner)
        && (permissions
            & (QFile::ReadGroup | QFile::WriteGroup | QFile::ExeGroup | QFile::ReadOther | QFile::WriteOther
               | QFile::ExeOther))
        == 0;
}

/// The same proxy, user and password (percent-encoding may differ).
void compareProxies(const QString &actual, const QString &expected)
{
    QNetworkProxy a;
    QNetworkProxy b;
    bool system = false;
    QString error;
    QVERIFY(ProxyConfig::parseUpstreamProxy(actual, &a, &system, &error));
    QVERIFY(ProxyConfig::parseUpstreamProxy(expected, &b, &system, &error));
    QCOMPARE(a.type(), b.type());
    QCOMPARE(a.hostName(), b.hostName());
    QCOMPARE(a.port(), b.port());
    QCOMPARE(a.user(), b.user());
    QCOMPARE(a.password(), b.password());
}

/// The proxy setting in @p settingsFile carries no password in any spelling.
void verifySettingHasNoPassword(const QString &settingsFile)
{
    const auto settings = SettingsRegistry::openIni(settingsFile);
    QString password;
    ProxyCredentials::withoutPassword(settings->value(Setting::UpstreamProxy).toString(), &password);
    QVERIFY(password.isEmpty());
}

void compareKeys(const QList<ApiKey> &actual, const QList<ApiKey> &expected)
{
    QCOMPARE(actual.size(), expected.size());
    for (int i = 0; i < expected.size(); ++i) {
        QCOMPARE(actual.at(i).secret, expected.at(i).secret);
        QCOMPARE(actual.at(i).label, expected.at(i).label);
        QCOMPARE(actual.at(i).enabled, expected.at(i).enabled);
    }
}

QByteArray readFile(const QString &path)
{
    QFile file(path);
    return file.open(QIODevice::ReadOnly) ? file.readAll() : QByteArray();
}

void writeFile(const QString &path, const QByteArray &content)
{
    QFile file(path);
    QVERIFY(file.open(QIODevice::WriteOnly));
    file.write(content);
}

/// No whole secret in the captured log output or in @p files.
void verifyNoSecretLeaked(const QStringList &files)
{
    QStringList secrets { ProxyPassword };
    for (const ApiKey &key : sampleKeys())
        secrets << key.secret;
    QMutexLocker lock(&s_logMutex);
    const QString log = s_log.join(QLatin1Char('\n'));
    for (const QString &secret : std::as_const(secrets)) {
        QVERIFY2(!log.contains(secret), "a whole secret appeared in the log output");
        const QByteArray encoded = QUrl::toPercentEncoding(secret);
        for (const QString &file : files) {
            const QByteArray content = readFile(file);
            QVERIFY2(!content.contains(secret.toUtf8()) && !content.contains(encoded),
                     qPrintable(QStringLiteral("a whole secret is in %1").arg(file)));
        }
    }
}

/// A settings file with the upstream proxy's password in its URL, as versions before the keychain wrote it.
QString writeLegacySettings(const QTemporaryDir &dir)
{
    const QString path = dir.filePath(QStringLiteral("KeyRelay.ini"));
    writeFile(path,
              "[meta]\nsettingsVersion=1\n[proxy]\nlistenPort=0\nupstreamProxy=\"http://me:"
                  + QUrl::toPercentEncoding(ProxyPassword) + "@proxy.local:3128\"\n");
    return path;
}

/// A fake Secret Service of the test's own on the session bus: every object path goes to @p service.
namespace FakeSecretService {
inline bool install(QDBusVirtualObject *service)
{
    QDBusConnection bus = QDBusConnection::sessionBus();
    return bus.isConnected()
        && bus.registerVirtualObject(QStringLiteral("/"), service, QDBusConnection::SubPath)
        && bus.registerService(QStringLiteral("org.freedesktop.secrets"));
}
inline void uninstall()
{
    QDBusConnection::sessionBus().unregisterObject(QStringLiteral("/"), QDBusConnection::UnregisterTree);
}
} // namespace FakeSecretService

} // namespace

/// The real Secret Service: gnome-keyring-daemon in this test's own D-Bus session.
class TestKeyring : public QObject
{
    Q_OBJECT
    int m_serial = 0;
    Keychain keychain() { return Keychain(QStringLiteral("KeyRelayTest%1").arg(m_serial)); }

private Q_SLOTS:
    void initTestCase()
    {
        QVERIFY2(QDBusConnection::sessionBus().isConnected(),
                 "no D-Bus session: run through with-dbus-session.sh");
        // The daemon was started just before this test: wait until it answers.
        QTRY_VERIFY_WITH_TIMEOUT(QDBusConnection::sessionBus().interface()->isServiceRegistered(
                                     QStringLiteral("org.freedesktop.secrets")),
                                 10000);
    }
    void init() { ++m_serial; }
    void cleanup() { verifyNoSecretLeaked({}); }

    void keyListRoundTrip()
    {
        KeychainKeyStore store(keychain());
        QList<ApiKey> keys;
        QString error;
        QVERIFY2(store.load(&keys, &error), qPrintable(error)); // nothing stored yet: empty, no error
        QVERIFY(keys.isEmpty());

        QVERIFY2(store.save(sampleKeys(), &error), qPrintable(error));
        KeychainKeyStore reopened(keychain());
        QVERIFY2(reopened.load(&keys, &error), qPrintable(error));
        compareKeys(keys, sampleKeys());
        QVERIFY(!reopened.location().contains(QLatin1String("keys.json")));

        // Saving replaces the list.
        QVERIFY(store.save(sampleKeys().mid(1), &error));
        QVERIFY(reopened.load(&keys, &error));
        compareKeys(keys, sampleKeys().mid(1));
        QVERIFY(store.save({}, &error));
        QVERIFY(reopened.load(&keys, &error));
        QVERIFY(keys.isEmpty());
    }

    void saveDuringSaveKeepsTheLatestList()
    {
        // The wait for the keychain runs an event loop: a save requested meanwhile must not be lost or
        // overwritten by the older list.
        KeychainKeyStore store(keychain());
        const QList<ApiKey> all = sampleKeys();
        QString innerError;
        bool innerResult = false;
        QTimer::singleShot(0, this, [&] { innerResult = store.save({ all.at(2) }, &innerError); });
        QString error;
        QVERIFY2(store.save({ all.at(0), all.at(1) }, &error), qPrintable(error));
        QVERIFY(innerResult);
        QList<ApiKey> keys;
        QVERIFY(KeychainKeyStore(keychain()).load(&keys, &error));
        compareKeys(keys, { all.at(2) });
    }

    void damagedListIsKeptAside()
    {
        QString error;
        QVERIFY(keychain().write(KeychainKeyStore::entryName(), "{ not json", &error)
                == Keychain::Status::Ok);
        KeychainKeyStore store(keychain());
        QList<ApiKey> keys;
        QVERIFY(!store.load(&keys, &error));
        QVERIFY(keys.isEmpty());
        QVERIFY(error.contains(QLatin1String("damaged")));
        QByteArray copy;
        QVERIFY(keychain().read(KeychainKeyStore::entryName() + QStringLiteral(".damaged"), &copy, &error)
                == Keychain::Status::Ok);
        QCOMPARE(copy, QByteArray("{ not json"));
    }

    void secretRoundTrip()
    {
        KeychainSecretStore store(keychain());
        QString value;
        QString error;
        QVERIFY(store.read(QStringLiteral("name"), &value, &error));
        QVERIFY(value.isEmpty());
        QVERIFY2(store.write(QStringLiteral("name"), ProxyPassword, &error), qPrintable(error));
        QVERIFY(KeychainSecretStore(keychain()).read(QStringLiteral("name"), &value, &error));
        QCOMPARE(value, ProxyPassword);
        QVERIFY(store.write(QStringLiteral("name"), QString(), &error)); // removes
        QVERIFY(store.read(QStringLiteral("name"), &value, &error));
        QVERIFY(value.isEmpty());
    }

    void factoryUsesTheKeychain()
    {
        QTemporaryDir dir;
        const QString settings = dir.filePath(QStringLiteral("KeyRelay.ini"));
        UserStores stores = openUserStores(settings, { keychain().service(), Keychain::DefaultTimeoutMs });
        QVERIFY(stores.inKeychain());
        QVERIFY(stores.problems.isEmpty());
        QVERIFY(stores.notice().contains(QLatin1String("system keychain")));
        QString error;
        QVERIFY2(stores.keys->save(sampleKeys(), &error), qPrintable(error));
        QVERIFY(!QFile::exists(FileKeyStore::pathNextTo(settings)));
        QList<ApiKey> keys;
        QVERIFY(KeychainKeyStore(keychain()).load(&keys, &error));
        compareKeys(keys, sampleKeys());

        QString notice;
        auto keyStore = openUserKeyStore(settings, &notice);
        QVERIFY(keyStore);
        QVERIFY(!notice.isEmpty());
    }

    void keysFileIsMovedIntoTheKeychain()
    {
        QTemporaryDir dir;
        const QString settings = dir.filePath(QStringLiteral("KeyRelay.ini"));
        const QString keysFile = FileKeyStore::pathNextTo(settings);
        QString error;
        QVERIFY(FileKeyStore(keysFile).save(sampleKeys(), &error));

        UserStores stores = openUserStores(settings, { keychain().service(), Keychain::DefaultTimeoutMs });
        QVERIFY2(stores.inKeychain(), qPrintable(stores.problems.join(QLatin1Char(' '))));
        QVERIFY(stores.problems.isEmpty());
        QCOMPARE(stores.messages.size(), 1);
        QVERIFY(stores.messages.first().contains(keysFile));
        QVERIFY(!QFile::exists(keysFile));

        QList<ApiKey> keys;
        QVERIFY(stores.keys->load(&keys, &error));
        compareKeys(keys, sampleKeys());
        QVERIFY(KeychainKeyStore(keychain()).load(&keys, &error)); // a fresh reader sees the same
        compareKeys(keys, sampleKeys());

        // A second start finds nothing to move.
        UserStores again = openUserStores(settings, { keychain().service(), Keychain::DefaultTimeoutMs });
        QVERIFY(again.inKeychain());
        QVERIFY(again.messages.isEmpty());
    }

    void providerKeysAreEntriesOfTheirOwn()
    {
        // Issue 17: a provider's own keys are the entry "keys/<id>"; the main list ("keys") is untouched,
        // and a provider's file from a run without a keychain moves into it.
        QTemporaryDir dir;
        const QString settings = dir.filePath(QStringLiteral("KeyRelay.ini"));
        const QString groqFile = dir.filePath(QStringLiteral("keys-groq.json"));
        QString error;
        QVERIFY(FileKeyStore(groqFile).save(sampleKeys().mid(2), &error));
        UserStores stores = openUserStores(settings, { keychain().service(), Keychain::DefaultTimeoutMs });
        QVERIFY(stores.inKeychain());
        QVERIFY(stores.keys->save(sampleKeys().mid(0, 1), &error));

        QString problem;
        auto openai = stores.providerKeys(QStringLiteral("openai"), &problem);
        QVERIFY(problem.isEmpty());
        QVERIFY(openai->inKeychain());
        QVERIFY2(openai->save(sampleKeys().mid(1, 1), &error), qPrintable(error));
        QList<ApiKey> keys;
        QVERIFY(KeychainKeyStore(keychain(), QStringLiteral("keys/openai")).load(&keys, &error));
        compareKeys(keys, sampleKeys().mid(1, 1));
        QVERIFY(KeychainKeyStore(keychain()).load(&keys, &error)); // the main list is its own
        compareKeys(keys, sampleKeys().mid(0, 1));
        QVERIFY(!QFile::exists(dir.filePath(QStringLiteral("keys-openai.json"))));

        auto groq = stores.providerKeys(QStringLiteral("groq"), &problem);
        QVERIFY2(problem.isEmpty(), qPrintable(problem));
        QVERIFY(!QFile::exists(groqFile));
        QVERIFY(groq->load(&keys, &error));
        compareKeys(keys, sampleKeys().mid(2));
        QVERIFY(KeychainKeyStore(keychain(), KeychainKeyStore::providerEntryName(QStringLiteral("groq")))
                    .load(&keys, &error));
        compareKeys(keys, sampleKeys().mid(2));
    }

    void keysAlreadyInTheKeychainAreKept()
    {
        QTemporaryDir dir;
        const QString settings = dir.filePath(QStringLiteral("KeyRelay.ini"));
        const QString keysFile = FileKeyStore::pathNextTo(settings);
        const QList<ApiKey> all = sampleKeys();
        QString error;
        QVERIFY(KeychainKeyStore(keychain()).save({ all.at(0), all.at(2) }, &error));
        QVERIFY(FileKeyStore(keysFile).save({ all.at(1), all.at(0) }, &error));

        UserStores stores = openUserStores(settings, { keychain().service(), Keychain::DefaultTimeoutMs });
        QVERIFY(stores.inKeychain());
        QVERIFY(!QFile::exists(keysFile));
        QList<ApiKey> keys;
        QVERIFY(stores.keys->load(&keys, &error));
        compareKeys(keys, { all.at(1), all.at(0), all.at(2) }); // the file's order first, nothing lost
    }

    void damagedKeysFileStaysAndIsUsed()
    {
        QTemporaryDir dir;
        const QString settings = dir.filePath(QStringLiteral("KeyRelay.ini"));
        const QString keysFile = FileKeyStore::pathNextTo(settings);
        writeFile(keysFile, "{ damaged");

        UserStores stores = openUserStores(settings, { keychain().service(), Keychain::DefaultTimeoutMs });
        QCOMPARE(stores.reason, UserStores::Reason::MigrationFailed);
        QVERIFY(QFile::exists(keysFile));
        QCOMPARE(stores.keys->location(), keysFile);
        QCOMPARE(stores.problems.size(), 1);
        QVERIFY(stores.notice().contains(keysFile));
        QByteArray inKeychain;
        QString error;
        QCOMPARE(keychain().read(KeychainKeyStore::entryName(), &inKeychain, &error),
                 Keychain::Status::NotFound);
    }

    void proxyPasswordLeavesTheSettingsFile()
    {
        QTemporaryDir dir;
        const QString settingsPath = writeLegacySettings(dir);
        auto settings = SettingsRegistry::openIni(settingsPath);
        const QString fullUrl = settings->value(Setting::UpstreamProxy).toString();
        QVERIFY(fullUrl.contains(QString::fromLatin1(QUrl::toPercentEncoding(ProxyPassword))));

        UserStores stores
            = openUserStores(settingsPath, { keychain().service(), Keychain::DefaultTimeoutMs });
        QVERIFY(stores.inKeychain());
        ProxyCredentials credentials(stores.secrets.get());
        QString error;
        QVERIFY(credentials.load(&error));
        bool moved = false;
        QVERIFY2(credentials.migrate(settings.get(), &moved, &error), qPrintable(error));
        QVERIFY(moved);
        settings.reset();

        const QByteArray file = readFile(settingsPath);
        QVERIFY(file.contains("http://me@proxy.local:3128"));
        QVERIFY(!QFile::exists(FileSecretStore::pathNextTo(settingsPath)));
        verifyNoSecretLeaked({ settingsPath });
        verifySettingHasNoPassword(settingsPath);

        // The next start runs with the password, from the keychain, for that proxy only.
        auto reopened = SettingsRegistry::openIni(settingsPath);
        KeychainSecretStore secrets(keychain());
        ProxyCredentials next(&secrets);
        QVERIFY(next.load(&error));
        compareProxies(next.complete(reopened->value(Setting::UpstreamProxy).toString()), fullUrl);
        QCOMPARE(next.complete(QStringLiteral("http://me@elsewhere.example:3128")),
                 QStringLiteral("http://me@elsewhere.example:3128"));
        QVERIFY(next.migrate(reopened.get(), &moved, &error));
        QVERIFY(!moved);
    }

    void secretsFileIsMovedIntoTheKeychain()
    {
        QTemporaryDir dir;
        const QString settings = dir.filePath(QStringLiteral("KeyRelay.ini"));
        const QString secretsFile = FileSecretStore::pathNextTo(settings);
        QString error;
        QVERIFY(FileSecretStore(secretsFile).write(QStringLiteral("name"), ProxyPassword, &error));
        QVERIFY(QFile::exists(secretsFile));

        UserStores stores = openUserStores(settings, { keychain().service(), Keychain::DefaultTimeoutMs });
        QVERIFY(stores.inKeychain());
        QVERIFY(!QFile::exists(secretsFile));
        QString value;
        QVERIFY(stores.secrets->read(QStringLiteral("name"), &value, &error));
        QCOMPARE(value, ProxyPassword);
    }

    void forcedFileStore()
    {
        qputenv("KEYRELAY_KEYSTORE", "file");
        QTemporaryDir dir;
        const QString settings = dir.filePath(QStringLiteral("KeyRelay.ini"));
        QString error;
        QVERIFY(FileKeyStore(FileKeyStore::pathNextTo(settings)).save(sampleKeys(), &error));
        UserStores stores = openUserStores(settings, { keychain().service(), Keychain::DefaultTimeoutMs });
        qunsetenv("KEYRELAY_KEYSTORE");
        QCOMPARE(stores.reason, UserStores::Reason::ForcedFile);
        QVERIFY(QFile::exists(FileKeyStore::pathNextTo(settings))); // not moved
        QVERIFY(stores.notice().contains(QLatin1String("KEYRELAY_KEYSTORE=file")));
        QByteArray inKeychain;
        QCOMPARE(keychain().read(KeychainKeyStore::entryName(), &inKeychain, &error),
                 Keychain::Status::NotFound);
    }
};

/// Something owns the Secret Service name but never answers: every call gives up after the timeout.
class SilentSecretService : public QDBusVirtualObject
{
public:
    QList<QDBusMessage> held;
    bool silent = true;
    QString introspect(const QString &) const override { return QString(); }
    bool handleMessage(const QDBusMessage &message, const QDBusConnection &) override
    {
        held.append(message);
        if (!silent)
            answerAll();
        return true;
    }
    /// Answers every held call with an error, and every later one at once.
    void answerAll()
    {
        silent = false;
        for (const QDBusMessage &message : std::as_const(held))
            QDBusConnection::sessionBus().send(
                message.createErrorReply(QDBusError::Failed, QStringLiteral("test: no service")));
        held.clear();
    }
};

class TestSilentKeychain : public QObject
{
    Q_OBJECT
    SilentSecretService m_service;

private Q_SLOTS:
    void initTestCase()
    {
        QVERIFY2(FakeSecretService::install(&m_service),
                 "no D-Bus session: run through with-dbus-session.sh");
    }
    void cleanupTestCase() { FakeSecretService::uninstall(); }

    void noAnswerIsBounded()
    {
        QTemporaryDir dir;
        const QString settings = dir.filePath(QStringLiteral("KeyRelay.ini"));
        QString error;
        QVERIFY(FileKeyStore(FileKeyStore::pathNextTo(settings)).save(sampleKeys(), &error));

        QElapsedTimer timer;
        timer.start();
        UserStores stores = openUserStores(settings, { QStringLiteral("KeyRelayTest"), 1500 });
        const qint64 elapsed = timer.elapsed();
        QVERIFY2(elapsed >= 1400 && elapsed < 5000, qPrintable(QString::number(elapsed)));
        QVERIFY(!m_service.held.isEmpty()); // the keychain really asked, and got no answer
        QCOMPARE(stores.reason, UserStores::Reason::NoKeychain);
        QVERIFY(stores.detail.contains(QLatin1String("did not answer")));
        QVERIFY(stores.notice().contains(FileKeyStore::pathNextTo(settings)));
        QList<ApiKey> keys;
        QVERIFY(stores.keys->load(&keys, &error)); // the keys are still there, in the file
        compareKeys(keys, sampleKeys());
        QCOMPARE(Keychain::abandonedJobs(), 1);

        // When the service finally answers, the abandoned job ends and frees itself.
        m_service.answerAll();
        QTRY_COMPARE_WITH_TIMEOUT(Keychain::abandonedJobs(), 0, 30000);
        verifyNoSecretLeaked({ settings });
    }
};

/// A Secret Service as gnome-keyring presents it on a desktop where no "login" collection exists yet (or the
/// "choose password for new keyring" prompt was cancelled): it answers, finds nothing, and refuses every
/// write with the error users see. Just enough of the protocol for libsecret's lookup and store.
class NoLoginCollectionService : public QDBusVirtualObject
{
public:
    static inline const QString PromptPath = QStringLiteral("/org/freedesktop/secrets/prompt/u1");
    int writes = 0; ///< CreateItem calls refused
    int collectionRequests = 0; ///< CreateCollection calls (each one prompts)
    bool answerPrompts = true; ///< false: prompts are left unanswered
    int heldPrompts = 0;
    /// The user cancels the prompt.
    static void dismissPrompt(const QDBusConnection &connection)
    {
        QDBusMessage completed = QDBusMessage::createSignal(
            PromptPath, QStringLiteral("org.freedesktop.Secret.Prompt"), QStringLiteral("Completed"));
        completed << true
                  << QVariant::fromValue(
                         QDBusVariant(QVariant::fromValue(QDBusObjectPath(QStringLiteral("/")))));
        connection.send(completed);
    }
    QStringList unexpected; ///< calls this fake does not know (they get an error)
    QString introspect(const QString &) const override { return QString(); }
    bool handleMessage(const QDBusMessage &message, const QDBusConnection &connection) override
    {
        const QString member = message.member();
        QDBusMessage reply;
        if (member == QLatin1String("GetAll")) {
            reply = message.createReply(QVariant::fromValue(QVariantMap()));
        } else if (member == QLatin1String("OpenSession")) {
            if (message.arguments().value(0).toString() == QLatin1String("plain"))
                reply = message.createReply({ QVariant::fromValue(QDBusVariant(QString())),
                                              QVariant::fromValue(QDBusObjectPath(
                                                  QStringLiteral("/org/freedesktop/secrets/session/1"))) });
            else
                reply = message.createErrorReply(QStringLiteral("org.freedesktop.DBus.Error.NotSupported"),
                                                 QStringLiteral("test: plain only"));
        } else if (member == QLatin1String("SearchItems")) {
            reply = message.createReply({ QVariant::fromValue(QList<QDBusObjectPath>()),
                                          QVariant::fromValue(QList<QDBusObjectPath>()) });
        } else if (member == QLatin1String("CreateCollection")) {
            // libsecret asks to create the missing collection: gnome-keyring then prompts "Choose password
            // for new keyring" (org.freedesktop.Secret.Prompt), which the user cancels, or never answers.
            ++collectionRequests;
            reply = message.createReply({ QVariant::fromValue(QDBusObjectPath(QStringLiteral("/"))),
                                          QVariant::fromValue(QDBusObjectPath(PromptPath)) });
        } else if (member == QLatin1String("Prompt") && message.path() == PromptPath) {
            connection.send(message.createReply());
            if (answerPrompts)
                dismissPrompt(connection);
            else
                ++heldPrompts;
            return true;
        } else if (member == QLatin1String("CreateItem")) {
            ++writes;
            // What gnome-keyring answers when the default alias points to a "login" collection that is not
            // there (GDBus's own error for an unknown object path).
            reply = message.createErrorReply(
                QStringLiteral("org.freedesktop.DBus.Error.UnknownObject"),
                QStringLiteral("Object does not exist at path “/org/freedesktop/secrets/collection/login”"));
        } else {
            unexpected << message.path() + QLatin1Char(' ') + message.interface() + QLatin1Char('.') + member;
            reply = message.createErrorReply(QStringLiteral("org.freedesktop.DBus.Error.UnknownMethod"),
                                             QStringLiteral("test: not implemented"));
        }
        connection.send(reply);
        return true;
    }
};

/// Issue 15: a keychain that answers but refuses every write must never leave the keys or the proxy
/// password in memory only. They go to the 0600 files at once, and a restart still has them.
class TestNoLoginCollection : public QObject
{
    Q_OBJECT
    NoLoginCollectionService m_service;
    UserStoreOptions options() const { return { QStringLiteral("KeyRelayTest"), 5000 }; }

private Q_SLOTS:
    void initTestCase()
    {
        qRegisterMetaType<StorageEvents::What>();
        QVERIFY2(FakeSecretService::install(&m_service),
                 "no D-Bus session: run through with-dbus-session.sh");
    }
    void cleanupTestCase() { FakeSecretService::uninstall(); }
    void cleanup()
    {
        verifyNoSecretLeaked({});
        QVERIFY2(m_service.unexpected.isEmpty(), qPrintable(m_service.unexpected.join(QLatin1Char('\n'))));
    }

    void refusedKeysGoToTheFileAtOnce()
    {
        QTemporaryDir dir;
        const QString settings = dir.filePath(QStringLiteral("KeyRelay.ini"));
        const QString keysFile = FileKeyStore::pathNextTo(settings);
        UserStores stores = openUserStores(settings, options());
        QVERIFY(stores.inKeychain()); // the keychain answered the probe: nothing stored yet
        QSignalSpy fellBack(stores.events.get(), &StorageEvents::fellBack);
        QSignalSpy notSaved(stores.events.get(), &StorageEvents::keysNotSaved);

        const int writesBefore = m_service.writes;
        const int collectionRequestsBefore = m_service.collectionRequests;
        QString error;
        QVERIFY2(stores.keys->save(sampleKeys(), &error), qPrintable(error));
        QVERIFY(m_service.writes > writesBefore); // the keychain was asked, and refused
        // libsecret asked to create the missing collection; the "new keyring" prompt was cancelled.
        QVERIFY(m_service.collectionRequests > collectionRequestsBefore);
        QCOMPARE(fellBack.size(), 1);
        QCOMPARE(fellBack.first().at(0).value<StorageEvents::What>(), StorageEvents::What::Keys);
        const QString why = fellBack.first().at(1).toString();
        QVERIFY2(why.contains(QLatin1String("/org/freedesktop/secrets/collection/login")), qPrintable(why));
        QCOMPARE(fellBack.first().at(2).toString(), keysFile);
        QCOMPARE(notSaved.size(), 0);
        QCOMPARE(stores.keys->location(), keysFile); // what the Keys page footer shows
        QVERIFY(ownerOnly(keysFile));
        QList<ApiKey> keys;
        QVERIFY(FileKeyStore(keysFile).load(&keys, &error));
        compareKeys(keys, sampleKeys());

        // Later saves go to the file without asking the keychain again, and say nothing more.
        const int writesAfter = m_service.writes;
        QVERIFY(stores.keys->save(sampleKeys().mid(1), &error));
        QCOMPARE(m_service.writes, writesAfter);
        QCOMPARE(fellBack.size(), 1);
        QVERIFY(stores.keys->load(&keys, &error));
        compareKeys(keys, sampleKeys().mid(1));

        // A restart (a new store opened the same way) still has the keys: the keychain refuses them again,
        // so they stay in the file, and the notice says where.
        UserStores restarted = openUserStores(settings, options());
        QCOMPARE(restarted.reason, UserStores::Reason::MigrationFailed);
        QVERIFY(restarted.notice().contains(keysFile));
        QCOMPARE(restarted.keys->location(), keysFile);
        QVERIFY2(restarted.keys->load(&keys, &error), qPrintable(error));
        compareKeys(keys, sampleKeys().mid(1));
        QVERIFY(QFile::exists(keysFile));
        verifyNoSecretLeaked({ settings });
    }

    void refusedProxyPasswordGoesToTheFileAtOnce()
    {
        QTemporaryDir dir;
        const QString settingsPath = writeLegacySettings(dir);
        const QString secretsFile = FileSecretStore::pathNextTo(settingsPath);
        auto settings = SettingsRegistry::openIni(settingsPath);
        const QString fullUrl = settings->value(Setting::UpstreamProxy).toString();

        UserStores stores = openUserStores(settingsPath, options());
        QVERIFY(stores.inKeychain());
        QSignalSpy fellBack(stores.events.get(), &StorageEvents::fellBack);
        ProxyCredentials credentials(stores.secrets.get());
        QString error;
        QVERIFY(credentials.load(&error));
        bool moved = false;
        QVERIFY2(credentials.migrate(settings.get(), &moved, &error), qPrintable(error));
        QVERIFY(moved);
        settings.reset();
        QCOMPARE(fellBack.size(), 1);
        QCOMPARE(fellBack.first().at(0).value<StorageEvents::What>(), StorageEvents::What::Secrets);
        QCOMPARE(fellBack.first().at(2).toString(), secretsFile);
        QCOMPARE(stores.secrets->location(), secretsFile);
        QVERIFY(ownerOnly(secretsFile));
        verifySettingHasNoPassword(settingsPath);
        verifyNoSecretLeaked({ settingsPath });

        // After a restart the proxy still gets its password.
        UserStores restarted = openUserStores(settingsPath, options());
        ProxyCredentials next(restarted.secrets.get());
        QVERIFY2(next.load(&error), qPrintable(error));
        compareProxies(
            next.complete(SettingsRegistry::openIni(settingsPath)->value(Setting::UpstreamProxy).toString()),
            fullUrl);
    }

    void unansweredPromptIsBounded()
    {
        // The "choose password for new keyring" prompt is left unanswered: the save gives up after the
        // keychain's timeout and the keys are in the file; nothing waits for the prompt after that.
        QTemporaryDir dir;
        const QString settings = dir.filePath(QStringLiteral("KeyRelay.ini"));
        m_service.answerPrompts = false;
        UserStores stores = openUserStores(settings, { QStringLiteral("KeyRelayTest"), 1500 });
        QSignalSpy fellBack(stores.events.get(), &StorageEvents::fellBack);
        QElapsedTimer timer;
        timer.start();
        QString error;
        QVERIFY2(stores.keys->save(sampleKeys(), &error), qPrintable(error));
        QVERIFY2(timer.elapsed() < 5000, qPrintable(QString::number(timer.elapsed())));
        QCOMPARE(m_service.heldPrompts, 1);
        QCOMPARE(fellBack.size(), 1);
        QVERIFY(fellBack.first().at(1).toString().contains(QLatin1String("did not answer")));
        QList<ApiKey> keys;
        QVERIFY(FileKeyStore(FileKeyStore::pathNextTo(settings)).load(&keys, &error));
        compareKeys(keys, sampleKeys());
        // Later saves do not wait again.
        timer.restart();
        QVERIFY(stores.keys->save(sampleKeys().mid(1), &error));
        QVERIFY(timer.elapsed() < 1000);
        QCOMPARE(m_service.heldPrompts, 1);

        // The user finally cancels the prompt: the abandoned job ends and frees itself.
        m_service.answerPrompts = true;
        NoLoginCollectionService::dismissPrompt(QDBusConnection::sessionBus());
        QTRY_COMPARE_WITH_TIMEOUT(Keychain::abandonedJobs(), 0, 30000);
    }

    void keysInMemoryOnlyAreReported()
    {
        // Neither the keychain nor the file takes the list (a folder is in the way of keys.json; file
        // permissions would not stop root): the caller is told, and so is the window (keysNotSaved), until a
        // save succeeds.
        QTemporaryDir dir;
        const QString settings = dir.filePath(QStringLiteral("KeyRelay.ini"));
        const QString keysFile = FileKeyStore::pathNextTo(settings);
        UserStores stores = openUserStores(settings, options());
        QSignalSpy notSaved(stores.events.get(), &StorageEvents::keysNotSaved);
        QSignalSpy saved(stores.events.get(), &StorageEvents::keysSaved);
        QSignalSpy fellBack(stores.events.get(), &StorageEvents::fellBack);
        QVERIFY(QDir().mkpath(keysFile + QStringLiteral("/in-the-way")));
        QString error;
        QVERIFY(!stores.keys->save(sampleKeys(), &error));
        QVERIFY2(error.contains(QLatin1String("collection/login")) && error.contains(keysFile),
                 qPrintable(error));
        QCOMPARE(notSaved.size(), 1);
        QCOMPARE(saved.size(), 0);
        QCOMPARE(fellBack.size(), 0); // not said before the keys really are in the file
        QVERIFY(QDir(keysFile).removeRecursively());
        QVERIFY2(stores.keys->save(sampleKeys(), &error), qPrintable(error));
        QCOMPARE(saved.size(), 1);
        QCOMPARE(saved.first().at(0).toString(), keysFile);
        QCOMPARE(fellBack.size(), 1);
    }
};

/// Issue 15 with the real gnome-keyring-daemon, started on demand and never unlocked: it has no "login"
/// collection, answers lookups, refuses writes, and cannot show its "new keyring" prompt here.
class TestKeyringWithoutLogin : public QObject
{
    Q_OBJECT
    UserStoreOptions options() const { return { QStringLiteral("KeyRelayTest"), 5000 }; }

private Q_SLOTS:
    void initTestCase()
    {
        qRegisterMetaType<StorageEvents::What>();
        QVERIFY2(QDBusConnection::sessionBus().isConnected(),
                 "no D-Bus session: run through with-dbus-session.sh");
        QTRY_VERIFY_WITH_TIMEOUT(QDBusConnection::sessionBus().interface()->isServiceRegistered(
                                     QStringLiteral("org.freedesktop.secrets")),
                                 10000);
    }
    void cleanup() { verifyNoSecretLeaked({}); }

    void keysAndPasswordSurviveARestart()
    {
        QTemporaryDir dir;
        const QString settingsPath = writeLegacySettings(dir);
        const QString keysFile = FileKeyStore::pathNextTo(settingsPath);
        const QString secretsFile = FileSecretStore::pathNextTo(settingsPath);
        QString fullUrl;
        {
            UserStores stores = openUserStores(settingsPath, options());
            QVERIFY(stores.inKeychain());
            QSignalSpy fellBack(stores.events.get(), &StorageEvents::fellBack);
            QString error;
            QVERIFY2(stores.keys->save(sampleKeys(), &error), qPrintable(error));
            QCOMPARE(stores.keys->location(), keysFile);
            auto settings = SettingsRegistry::openIni(settingsPath);
            fullUrl = settings->value(Setting::UpstreamProxy).toString();
            ProxyCredentials credentials(stores.secrets.get());
            QVERIFY(credentials.load(&error));
            bool moved = false;
            QVERIFY2(credentials.migrate(settings.get(), &moved, &error), qPrintable(error));
            QVERIFY(moved);
            QCOMPARE(fellBack.size(), 2);
            qInfo().noquote() << "the keychain said:" << fellBack.first().at(1).toString();
            QVERIFY(ownerOnly(keysFile));
            QVERIFY(ownerOnly(secretsFile));
        }
        verifySettingHasNoPassword(settingsPath);
        verifyNoSecretLeaked({ settingsPath });

        // Restart.
        UserStores restarted = openUserStores(settingsPath, options());
        QString error;
        QList<ApiKey> keys;
        QVERIFY2(restarted.keys->load(&keys, &error), qPrintable(error));
        compareKeys(keys, sampleKeys());
        QVERIFY(restarted.notice().contains(keysFile));
        ProxyCredentials next(restarted.secrets.get());
        QVERIFY2(next.load(&error), qPrintable(error));
        compareProxies(
            next.complete(SettingsRegistry::openIni(settingsPath)->value(Setting::UpstreamProxy).toString()),
            fullUrl);
    }
};

/// No D-Bus session at all (DBUS_SESSION_BUS_ADDRESS points nowhere): the 0600 files, at once.
class TestNoKeychain : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() { QVERIFY(!QDBusConnection::sessionBus().isConnected()); }
    void cleanup() { verifyNoSecretLeaked({}); }

    void proxyPasswordSplitting_data()
    {
        QTest::addColumn<QString>("url");
        QTest::addColumn<QString>("withoutPassword");
        QTest::addColumn<QString>("password");
        QTest::newRow("http") << QStringLiteral("http://me:pw@proxy.local:3128")
                              << QStringLiteral("http://me@proxy.local:3128") << QStringLiteral("pw");
        QTest::newRow("encoded") << QStringLiteral("socks5://me%40corp:p%3Aw%20d@[::1]:1080")
                                 << QStringLiteral("socks5://me%40corp@[::1]:1080")
                                 << QStringLiteral("p:w d");
        QTest::newRow("no password") << QStringLiteral("http://me@proxy.local:3128")
                                     << QStringLiteral("http://me@proxy.local:3128") << QString();
        QTest::newRow("none") << QString() << QString() << QString();
        QTest::newRow("system") << QStringLiteral("system") << QStringLiteral("system") << QString();
    }

    void proxyPasswordSplitting()
    {
        QFETCH(QString, url);
        QFETCH(QString, withoutPassword);
        QFETCH(QString, password);
        QString found;
        QCOMPARE(ProxyCredentials::withoutPassword(url, &found), withoutPassword);
        QCOMPARE(found, password);
        if (!password.isEmpty())
            compareProxies(ProxyCredentials::withPassword(withoutPassword, password), url);
    }

    void passwordOnlyForItsOwnProxy()
    {
        ProxyCredentials credentials(nullptr); // memory only
        QString setting;
        QString error;
        QVERIFY(credentials.remember(QStringLiteral("http://me:pw@proxy.local:3128"), &setting, &error));
        QCOMPARE(setting, QStringLiteral("http://me@proxy.local:3128"));
        compareProxies(credentials.complete(setting), QStringLiteral("http://me:pw@proxy.local:3128"));
        for (const char *other : { "http://me@evil.example:3128", "http://me@proxy.local:8080",
                                   "http://you@proxy.local:3128", "socks5://me@proxy.local:3128" }) {
            const QString url = QString::fromLatin1(other);
            QCOMPARE(credentials.complete(url), url);
        }
        // A URL that carries its own password keeps it.
        QCOMPARE(credentials.complete(QStringLiteral("http://me:other@proxy.local:3128")),
                 QStringLiteral("http://me:other@proxy.local:3128"));
    }

    void damagedSecretsFileIsKeptAside()
    {
        QTemporaryDir dir;
        const QString path = dir.filePath(QStringLiteral("secrets.json"));
        writeFile(path, "{ damaged");
        FileSecretStore store(path);
        QString value;
        QString error;
        QVERIFY(!store.read(QStringLiteral("name"), &value, &error));
        QVERIFY(error.contains(path));
        QVERIFY(store.write(QStringLiteral("name"), ProxyPassword, &error));
        QCOMPARE(readFile(path + QStringLiteral(".damaged")), QByteArray("{ damaged"));
        QVERIFY(store.read(QStringLiteral("name"), &value, &error));
        QCOMPARE(value, ProxyPassword);
        QVERIFY(ownerOnly(path));
    }

    void fallsBackToTheFiles()
    {
        QTemporaryDir dir;
        const QString settingsPath = writeLegacySettings(dir);
        const QString keysFile = FileKeyStore::pathNextTo(settingsPath);
        QString error;
        QVERIFY(FileKeyStore(keysFile).save(sampleKeys(), &error));

        QElapsedTimer timer;
        timer.start();
        UserStores stores = openUserStores(settingsPath);
        QVERIFY2(timer.elapsed() < 5000, "the fallback must not wait for the keychain timeout");
        QCOMPARE(stores.reason, UserStores::Reason::NoKeychain);
        QVERIFY(!stores.detail.isEmpty());
        QVERIFY(
            stores.notice().startsWith(QLatin1String("No system keychain (Secret Service) is available")));
        QVERIFY(stores.notice().contains(keysFile));
        QVERIFY(stores.notice().contains(QLatin1String("readable only by you")));
        QCOMPARE(stores.keys->location(), keysFile);
        QList<ApiKey> keys;
        QVERIFY(stores.keys->load(&keys, &error));
        compareKeys(keys, sampleKeys());
        QVERIFY(stores.keys->save(sampleKeys().mid(1), &error));
        QVERIFY(ownerOnly(keysFile));

        // The proxy password moves to secrets.json (0600), not into the settings file, nor into the copy
        // the registry keeps of a file with a bad value.
        QFile legacy(settingsPath);
        QVERIFY(legacy.open(QIODevice::Append));
        legacy.write("[rewrite]\nthreshold=many\n");
        legacy.close();
        auto settings = SettingsRegistry::openIni(settingsPath);
        const QString damagedCopy = settings->damagedCopy();
        QVERIFY(QFile::exists(damagedCopy));
        const QString fullUrl = settings->value(Setting::UpstreamProxy).toString();
        ProxyCredentials credentials(stores.secrets.get());
        QVERIFY(credentials.load(&error));
        bool moved = false;
        QVERIFY2(credentials.migrate(settings.get(), &moved, &error), qPrintable(error));
        QVERIFY(moved);
        settings.reset();
        const QString secretsFile = FileSecretStore::pathNextTo(settingsPath);
        QVERIFY(QFile::exists(secretsFile));
        QVERIFY(ownerOnly(secretsFile));
        verifyNoSecretLeaked({ settingsPath, damagedCopy });
        verifySettingHasNoPassword(settingsPath);
        FileSecretStore secrets(secretsFile);
        ProxyCredentials next(&secrets);
        QVERIFY(next.load(&error));
        compareProxies(
            next.complete(SettingsRegistry::openIni(settingsPath)->value(Setting::UpstreamProxy).toString()),
            fullUrl);

        QString notice;
        QVERIFY(openUserKeyStore(settingsPath, &notice));
        QVERIFY(notice.contains(keysFile));
    }
};

int main(int argc, char **argv)
{
    QCoreApplication app(argc, argv);
    s_previousHandler = qInstallMessageHandler(captureMessage);
    const QByteArray mode = qgetenv("KEYRELAY_KEYCHAIN_TEST");
    if (mode == "keyring") {
        TestKeyring test;
        return QTest::qExec(&test, argc, argv);
    }
    if (mode == "silent") {
        TestSilentKeychain test;
        return QTest::qExec(&test, argc, argv);
    }
    if (mode == "nologin") {
        TestKeyringWithoutLogin test;
        return QTest::qExec(&test, argc, argv);
    }
    if (mode == "nocollection") {
        TestNoLoginCollection test;
        return QTest::qExec(&test, argc, argv);
    }
    if (mode == "nobus") {
        TestNoKeychain test;
        return QTest::qExec(&test, argc, argv);
    }
    qCritical("set KEYRELAY_KEYCHAIN_TEST to keyring, nologin, silent, nocollection or nobus (see "
              "tests/keychain/CMakeLists.txt)");
    return 1;
}

#include "tst_keychain.moc"

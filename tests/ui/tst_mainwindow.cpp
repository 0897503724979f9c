// The main window against a real ProxyService and a mock upstream: log, settings, errors.
#include "autostartmanager.h"
#include "keyspage.h"
#include "keystore.h"
#include "logmodel.h"
#include "logpage.h"
#include "mainwindow.h"
#include "mockupstream.h"
#include "proxyclient.h"
#include "proxycredentials.h"
#include "proxyservice.h"
#include "secretstore.h"
#include "settingspage.h"
#include "settingsregistry.h"

#include <QApplication>
#include <QCheckBox>
#include <QClipboard>
#include <QComboBox>
#include <QGuiApplication>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QSignalSpy>
#include <QSpinBox>
#include <QStandardPaths>
#include <QTabWidget>
#include <QTableView>
#include <QTcpServer>
#include <QTemporaryDir>
#include <QTest>

using namespace keyrelay;

namespace {
const QString Key = QStringLiteral("sk-proj-ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZzzzz");

quint16 freePort()
{
    QTcpServer server;
    if (!server.listen(QHostAddress::LocalHost, 0))
        return 0;
    return server.serverPort();
}

QByteArray conversation()
{
    QJsonArray messages;
    const char *roles[] = { "system", "user", "assistant", "user", "assistant", "user" };
    for (const char *role : roles)
        messages.append(QJsonObject { { QStringLiteral("role"), QLatin1String(role) },
                                      { QStringLiteral("content"), QStringLiteral("x") } });
    return QJsonDocument(QJsonObject { { QStringLiteral("model"), QStringLiteral("gpt-test") },
                                       { QStringLiteral("messages"), messages } })
        .toJson(QJsonDocument::Compact);
}

QStringList rolesOf(const QByteArray &body)
{
    QStringList roles;
    const QJsonArray messages
        = QJsonDocument::fromJson(body).object().value(QLatin1String("messages")).toArray();
    for (const QJsonValue &message : messages)
        roles << message.toObject().value(QLatin1String("role")).toString();
    return roles;
}

/// The whole window over temporary settings, a key, a running proxy and a mock upstream.
struct Fixture
{
    QTemporaryDir dir;
    it::MockUpstream upstream;
    std::unique_ptr<SettingsRegistry> settings;
    KeyPool pool;
    std::unique_ptr<FileKeyStore> store;
    std::unique_ptr<ProxyService> service;
    std::unique_ptr<XdgAutostartManager> autostart;
    std::unique_ptr<MainWindow> window;
    QNetworkAccessManager client;

    bool setUp(quint16 port = 0)
    {
        if (!dir.isValid() || !upstream.listen())
            return false;
        upstream.setHandler(
            [](const it::RecordedRequest &) { return it::MockResponse::json(200, chatCompletion()); });
        qputenv("XDG_CONFIG_HOME", dir.filePath(QStringLiteral("xdg")).toUtf8());
        settings = SettingsRegistry::openIni(dir.filePath(QStringLiteral("KeyRelay.ini")));
        settings->setValue(Setting::ListenPort, int(port));
        settings->setValue(Setting::Upstream, upstream.url().toString());
        pool.setKeys({ { Key, QString(), true } });
        store = std::make_unique<FileKeyStore>(FileKeyStore::pathNextTo(settings->fileName()));
        service = std::make_unique<ProxyService>(&pool);
        autostart = std::make_unique<XdgAutostartManager>(QStringLiteral("/usr/bin/keyrelay"));
        window = std::make_unique<MainWindow>(settings.get(), &pool, store.get(), service.get(),
                                              autostart.get());
        QString error;
        service->start(settings->proxyConfig(), &error);
        return true;
    }
    ~Fixture()
    {
        window.reset();
        if (service)
            service->stop();
    }
};
} // namespace

class TestMainWindow : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() { QStandardPaths::setTestModeEnabled(true); }

    void logShowsRealRequest()
    {
        Fixture f;
        QVERIFY(f.setUp());
        QCOMPARE(f.service->state(), ProxyService::State::Running);
        f.window->show();
        f.window->showPage(MainWindow::LogTab);
        QVERIFY(f.window->stateText().contains(QStringLiteral("Running")));
        QCOMPARE(f.window->endpointText(), f.service->clientBaseUrl());
        QVERIFY(f.window->endpointText().endsWith(QLatin1String("/v1")));

        QCOMPARE(postThrough(&f.client, f.service->endpointUrl(), chatBody()).status, 200);
        LogModel *log = f.window->logModel();
        QTRY_COMPARE(log->rowCount(), 1);
        QCOMPARE(log->index(0, LogModel::MethodColumn).data().toString(), QStringLiteral("POST"));
        QCOMPARE(log->index(0, LogModel::PathColumn).data().toString(),
                 QStringLiteral("/v1/chat/completions"));
        QCOMPARE(log->index(0, LogModel::ModelColumn).data().toString(), QStringLiteral("gpt-test"));
        QCOMPARE(log->index(0, LogModel::StatusColumn).data().toString(), QStringLiteral("200"));
        QCOMPARE(log->index(0, LogModel::KeyColumn).data().toString(), KeyPool::mask(Key));
        QCOMPARE(log->index(0, LogModel::TokensColumn).data().toString(), QStringLiteral("7 (5+2)"));
        // The view (through its filter) shows it too.
        QTRY_COMPARE(f.window->logPage()->view()->model()->rowCount(), 1);
        QTRY_COMPARE(f.window->requestsToday(), quint64(1));
        // Export.
        QString error;
        const QString csvPath = f.dir.filePath(QStringLiteral("log.csv"));
        QVERIFY(f.window->logPage()->exportCsv(csvPath, &error));
        QFile csv(csvPath);
        QVERIFY(csv.open(QIODevice::ReadOnly));
        QVERIFY(csv.readAll().contains("/v1/chat/completions"));
        // Copy row.
        f.window->logPage()->view()->selectRow(0);
        QVERIFY(f.window->logPage()->selectionText().contains(QStringLiteral("gpt-test")));
        QVERIFY(!f.window->logPage()->selectionText().contains(Key));
    }

    void reorderToggleChangesWhatUpstreamReceives()
    {
        Fixture f;
        QVERIFY(f.setUp());
        SettingsPage *page = f.window->settingsPage();
        page->reorderCheck()->setChecked(true);
        page->thresholdSpin()->setValue(4);
        page->depthSpin()->setValue(3);
        QVERIFY2(page->apply(), qPrintable(page->errorText()));
        QCOMPARE(postThrough(&f.client, f.service->endpointUrl(), conversation()).status, 200);
        QCOMPARE(f.upstream.requestCount(), 1);
        QCOMPARE(
            rolesOf(f.upstream.lastRequest().body),
            (QStringList { QStringLiteral("user"), QStringLiteral("assistant"), QStringLiteral("system"),
                           QStringLiteral("user"), QStringLiteral("assistant"), QStringLiteral("user") }));

        page->reorderCheck()->setChecked(false);
        QVERIFY(page->apply());
        QCOMPARE(f.settings->value(Setting::ReorderEnabled).toBool(), false);
        QCOMPARE(postThrough(&f.client, f.service->endpointUrl(), conversation()).status, 200);
        QCOMPARE(f.upstream.requestCount(), 2);
        QCOMPARE(f.upstream.lastRequest().body, conversation()); // untouched, byte for byte
    }

    void previewFollowsTheForm()
    {
        Fixture f;
        QVERIFY(f.setUp());
        SettingsPage *page = f.window->settingsPage();
        page->reorderCheck()->setChecked(true);
        page->thresholdSpin()->setValue(4);
        page->depthSpin()->setValue(3);
        QCOMPARE(page->previewBefore(),
                 QStringLiteral("system, user, assistant, user, assistant, user, assistant, user"));
        QCOMPARE(page->previewAfter(),
                 QStringLiteral("user, assistant, user, assistant, system, user, assistant, user"));
        page->depthSpin()->setValue(1);
        QCOMPARE(page->previewAfter(),
                 QStringLiteral("user, assistant, user, assistant, user, assistant, system, user"));
        page->reorderCheck()->setChecked(false);
        QCOMPARE(page->previewAfter(), page->previewBefore());
        page->reorderCheck()->setChecked(true);
        page->thresholdSpin()->setValue(20);
        QCOMPARE(page->previewAfter(), page->previewBefore());
    }

    void portChangeRestartsListener()
    {
        const quint16 first = freePort();
        Fixture f;
        QVERIFY(f.setUp(first));
        QCOMPARE(f.service->port(), first);
        const QString oldEndpoint = f.service->endpointUrl();
        QCOMPARE(postThrough(&f.client, oldEndpoint, chatBody()).status, 200);

        const quint16 second = freePort();
        QVERIFY(second != first);
        SettingsPage *page = f.window->settingsPage();
        page->listenPortSpin()->setValue(second);
        QTest::mouseClick(page->applyButton(), Qt::LeftButton);
        QVERIFY2(page->errorText().isEmpty(), qPrintable(page->errorText()));
        QCOMPARE(f.service->port(), second);
        QCOMPARE(f.settings->value(Setting::ListenPort).toInt(), int(second));
        QCOMPARE(f.window->endpointText(), QStringLiteral("http://127.0.0.1:%1/v1").arg(second));

        QCOMPARE(postThrough(&f.client, f.service->endpointUrl(), chatBody()).status, 200);
        // A new connection to the old port is refused (a kept-alive one may still finish its work).
        QNetworkAccessManager freshClient;
        const ProxyAnswer old = postThrough(&freshClient, oldEndpoint, chatBody());
        QCOMPARE(old.status, 0);
        QCOMPARE(old.error, QNetworkReply::ConnectionRefusedError);
    }

    void blockedWebsiteAllowedWithOneClick()
    {
        Fixture f;
        QVERIFY(f.setUp());
        f.window->show();
        f.window->showPage(MainWindow::LogTab);
        const QList<QPair<QByteArray, QByteArray>> origin { { "Origin", "https://bettergpt.chat" } };
        const QString endpoint = f.service->endpointUrl();
        QCOMPARE(postThrough(&f.client, endpoint, chatBody(), QStringLiteral("/v1/chat/completions"), origin)
                     .status,
                 403);
        QCOMPARE(f.upstream.requestCount(), 0);

        LogModel *log = f.window->logModel();
        QTRY_COMPARE(log->rowCount(), 1);
        QVERIFY(log->record(0).originBlocked);
        LogPage *page = f.window->logPage();
        QVERIFY(page->allowWebsiteButton()->isHidden());
        page->view()->selectRow(0);
        QCOMPARE(page->selectedBlockedOrigin(), QStringLiteral("https://bettergpt.chat"));
        QVERIFY(!page->allowWebsiteButton()->isHidden());
        QTest::mouseClick(page->allowWebsiteButton(), Qt::LeftButton);

        QCOMPARE(f.settings->value(Setting::AllowedOrigins).toStringList(),
                 QStringList { QStringLiteral("https://bettergpt.chat") });
        QCOMPARE(f.window->settingsPage()->allowedOriginsEdit()->text(),
                 QStringLiteral("https://bettergpt.chat"));
        QCOMPARE(postThrough(&f.client, endpoint, chatBody(), QStringLiteral("/v1/chat/completions"), origin)
                     .status,
                 200);
        QCOMPARE(f.upstream.requestCount(), 1);
    }

    void securitySettings()
    {
        Fixture f;
        QVERIFY(f.setUp());
        SettingsPage *page = f.window->settingsPage();
        f.window->show();
        f.window->showPage(MainWindow::SettingsTab);
        // "Allow any website" carries a visible warning.
        QVERIFY(!page->allowAnyWebsiteWarning()->isVisible());
        page->allowAnyWebsiteCheck()->setChecked(true);
        QVERIFY(page->allowAnyWebsiteWarning()->isVisible());
        page->allowAnyWebsiteCheck()->setChecked(false);

        // A reverse-proxy host name needs a token: the page refuses and says why.
        page->allowedHostsEdit()->setText(QStringLiteral("api.example.test"));
        QVERIFY(!page->apply());
        QVERIFY2(page->errorText().contains(QLatin1String("clientToken")), qPrintable(page->errorText()));
        QVERIFY(f.settings->value(Setting::AllowedHosts).toStringList().isEmpty());

        // Generate makes a fresh token; Copy puts it on the clipboard; then it applies.
        QTest::mouseClick(page->generateTokenButton(), Qt::LeftButton);
        const QString token = page->clientTokenEdit()->text();
        QVERIFY(token.size() >= 40);
        QTest::mouseClick(page->generateTokenButton(), Qt::LeftButton);
        QVERIFY(page->clientTokenEdit()->text() != token);
        QTest::mouseClick(page->copyTokenButton(), Qt::LeftButton);
        QCOMPARE(QGuiApplication::clipboard()->text(), page->clientTokenEdit()->text());
        QVERIFY2(page->apply(), qPrintable(page->errorText()));
        QCOMPARE(f.settings->value(Setting::ClientToken).toString(), page->clientTokenEdit()->text());

        // The running proxy enforces it at once.
        QCOMPARE(postThrough(&f.client, f.service->endpointUrl(), chatBody()).status, 401);
        const QList<QPair<QByteArray, QByteArray>> withToken { { "x-api-key",
                                                                 page->clientTokenEdit()->text().toUtf8() } };
        QCOMPARE(postThrough(&f.client, f.service->endpointUrl(), chatBody(),
                             QStringLiteral("/v1/chat/completions"), withToken)
                     .status,
                 200);

        // A short hand-typed token is refused with a clear message.
        page->clientTokenEdit()->setText(QStringLiteral("short"));
        QVERIFY(!page->apply());
        QVERIFY(page->errorText().contains(QLatin1String("16")));
    }

    void portInUseShowsError()
    {
        Fixture f;
        QVERIFY(f.setUp());
        QTcpServer squatter;
        QVERIFY(squatter.listen(QHostAddress::LocalHost, 0));
        SettingsPage *page = f.window->settingsPage();
        QSignalSpy failed(page, &SettingsPage::applyFailed);
        QSignalSpy windowFailed(f.window.get(), &MainWindow::proxyFailed);
        const quint16 working = f.service->port();
        page->listenPortSpin()->setValue(squatter.serverPort());
        QVERIFY(!page->apply());
        QCOMPARE(failed.count(), 1);
        QVERIFY(!page->errorText().isEmpty());
        QVERIFY2(page->errorText().contains(QString::number(squatter.serverPort())),
                 qPrintable(page->errorText()));
        // The working proxy is not taken down (issue 15, item 4): it keeps serving on its old port, and the
        // settings file keeps that port.
        QCOMPARE(windowFailed.count(), 0);
        QCOMPARE(f.service->state(), ProxyService::State::Running);
        QCOMPARE(f.service->port(), working);
        QVERIFY2(page->errorText().contains(QString::number(working)), qPrintable(page->errorText()));
        QVERIFY(f.window->stateText().contains(QStringLiteral("Running")));
        QVERIFY(f.settings->value(Setting::ListenPort).toInt() != int(squatter.serverPort()));
        QCOMPARE(postThrough(&f.client, f.service->endpointUrl(), chatBody()).status, 200);

        // Picking a free port moves the proxy there.
        page->listenPortSpin()->setValue(0);
        QVERIFY2(page->apply(), qPrintable(page->errorText()));
        QCOMPARE(f.service->state(), ProxyService::State::Running);
        QVERIFY(f.window->stateText().contains(QStringLiteral("Running")));
    }

    void portInUseAtStartShowsError()
    {
        QTcpServer squatter;
        QVERIFY(squatter.listen(QHostAddress::LocalHost, 0));
        Fixture f;
        QVERIFY(f.setUp(squatter.serverPort()));
        QCOMPARE(f.service->state(), ProxyService::State::Failed);
        QVERIFY(f.window->messageText().contains(QString::number(squatter.serverPort())));
        QVERIFY(f.window->stateText().contains(QStringLiteral("Not running")));
    }

    void keysAndUsageSettings()
    {
        Fixture f;
        QVERIFY(f.setUp());
        SettingsPage *page = f.window->settingsPage();
        QCOMPARE(page->recheckInvalidSpin()->value(), 300);
        QCOMPARE(page->maxPerKeySpin()->value(), 0);
        QCOMPARE(page->maxPerKeySpin()->text(), QStringLiteral("no limit"));
        QVERIFY(page->streamUsageCheck()->isChecked());
        page->recheckInvalidSpin()->setValue(42);
        page->maxPerKeySpin()->setValue(3);
        page->streamUsageCheck()->setChecked(false);
        QVERIFY2(page->apply(), qPrintable(page->errorText()));
        QCOMPARE(f.settings->value(Setting::RecheckInvalidSec).toInt(), 42);
        QCOMPARE(f.settings->value(Setting::MaxConcurrentPerKey).toInt(), 3);
        QCOMPARE(f.settings->value(Setting::RequestStreamUsage).toBool(), false);
        QCOMPARE(f.pool.policy().maxConcurrentPerKey, 3); // the running proxy uses it
        QCOMPARE(f.pool.policy().recheckInvalidSec, 42);
    }

    void openingTheLogFocusesTheTable()
    {
        // A focused text field blinks its cursor: an idle window would be woken twice a second.
        Fixture f;
        QVERIFY(f.setUp());
        f.window->show();
        f.window->activateWindow();
        QVERIFY(QTest::qWaitForWindowActive(f.window.get()));
        f.window->showPage(MainWindow::KeysTab);
        f.window->keysPage()->setFocus();
        f.window->showPage(MainWindow::LogTab);
        QTRY_VERIFY(QApplication::focusWidget() != nullptr);
        QVERIFY2(qobject_cast<QTableView *>(QApplication::focusWidget()),
                 QApplication::focusWidget()->metaObject()->className());
    }

    void keyStateChangesAreLogRows()
    {
        Fixture f;
        QVERIFY(f.setUp());
        LogModel *log = f.window->logModel();
        const QString id = KeyPool::keyId(f.pool.keys().first().secret);
        f.pool.report(id, QString(), KeyVerdict::Invalid, -1, QStringLiteral("401 invalid_api_key"));
        QTRY_COMPARE(log->rowCount(), 1);
        QCOMPARE(log->index(0, LogModel::MethodColumn).data().toString(), QStringLiteral("KEY"));
        QCOMPARE(log->index(0, LogModel::PathColumn).data().toString(), QStringLiteral("stopped working"));
        QCOMPARE(log->index(0, LogModel::ErrorColumn).data().toString(),
                 QStringLiteral("401 invalid_api_key"));
        QVERIFY(!log->index(0, LogModel::KeyColumn).data().toString().contains(f.pool.keys().first().secret));
        f.pool.report(id, QString(), KeyVerdict::Success, -1, QString());
        QTRY_COMPARE(log->rowCount(), 2);
        const int newest
            = log->index(0, LogModel::PathColumn).data().toString() == QLatin1String("works again") ? 0 : 1;
        QCOMPARE(log->index(newest, LogModel::PathColumn).data().toString(), QStringLiteral("works again"));
    }

    void invalidSettingsAreRefused()
    {
        Fixture f;
        QVERIFY(f.setUp());
        SettingsPage *page = f.window->settingsPage();
        page->upstreamEdit()->setText(QStringLiteral("ftp://nope"));
        QVERIFY(!page->apply());
        QVERIFY(!page->errorText().isEmpty());
        QCOMPARE(f.settings->value(Setting::Upstream).toString(), f.upstream.url().toString());
        QCOMPARE(f.service->state(), ProxyService::State::Running);
    }

    void upstreamProxyIsComposed()
    {
        Fixture f;
        QVERIFY(f.setUp());
        SettingsPage *page = f.window->settingsPage();
        page->proxyTypeCombo()->setCurrentIndex(2); // HTTP
        page->proxyHostEdit()->setText(QStringLiteral("proxy.local"));
        page->proxyPortSpin()->setValue(3128);
        page->proxyUserEdit()->setText(QStringLiteral("me@corp"));
        page->proxyPasswordEdit()->setText(QStringLiteral("p:w d"));
        QCOMPARE(page->composedUpstreamProxy(),
                 QStringLiteral("http://me%40corp:p%3Aw%20d@proxy.local:3128"));
        QVERIFY2(page->apply(), qPrintable(page->errorText()));
        QCOMPARE(f.settings->value(Setting::UpstreamProxy).toString(), page->composedUpstreamProxy());
        page->proxyTypeCombo()->setCurrentIndex(0);
        page->revert();
        QCOMPARE(page->proxyTypeCombo()->currentIndex(), 2);
        QCOMPARE(page->proxyUserEdit()->text(), QStringLiteral("me@corp"));
        QCOMPARE(page->proxyPasswordEdit()->text(), QStringLiteral("p:w d"));

        page->proxyTypeCombo()->setCurrentIndex(3); // SOCKS5
        page->proxyUserEdit()->clear();
        page->proxyPasswordEdit()->clear();
        page->proxyPortSpin()->setValue(1080);
        QCOMPARE(page->composedUpstreamProxy(), QStringLiteral("socks5://proxy.local:1080"));
        page->proxyTypeCombo()->setCurrentIndex(1);
        QCOMPARE(page->composedUpstreamProxy(), QStringLiteral("system"));
        page->proxyTypeCombo()->setCurrentIndex(0);
        QCOMPARE(page->composedUpstreamProxy(), QString());
    }

    void proxyPasswordStaysOutOfTheSettingsFile()
    {
        Fixture f;
        QVERIFY(f.setUp());
        const QString secretsFile = FileSecretStore::pathNextTo(f.settings->fileName());
        FileSecretStore secrets(secretsFile);
        ProxyCredentials credentials(&secrets);
        f.window->setProxyCredentials(&credentials);
        SettingsPage *page = f.window->settingsPage();
        const QString password = QStringLiteral("pr0xy-pw-never-in-settings");
        page->proxyTypeCombo()->setCurrentIndex(2); // HTTP
        page->proxyHostEdit()->setText(QStringLiteral("127.0.0.1"));
        page->proxyPortSpin()->setValue(3128);
        page->proxyUserEdit()->setText(QStringLiteral("me"));
        page->proxyPasswordEdit()->setText(password);
        QVERIFY2(page->apply(), qPrintable(page->errorText()));

        QCOMPARE(f.settings->value(Setting::UpstreamProxy).toString(),
                 QStringLiteral("http://me@127.0.0.1:3128"));
        QVERIFY(f.settings->sync());
        QFile file(f.settings->fileName());
        QVERIFY(file.open(QIODevice::ReadOnly));
        QVERIFY(!file.readAll().contains(password.toUtf8()));
        QVERIFY(f.service->config().upstreamProxy.contains(password)); // the running proxy has it

        // The next start (new credentials over the same store) gets it back for this proxy.
        FileSecretStore reopenedSecrets(secretsFile);
        ProxyCredentials next(&reopenedSecrets);
        QString error;
        QVERIFY(next.load(&error));
        QVERIFY(next.complete(f.settings->value(Setting::UpstreamProxy).toString()).contains(password));
        page->proxyPasswordEdit()->clear();
        page->revert();
        QCOMPARE(page->proxyPasswordEdit()->text(), password);

        // No password any more: the stored one is forgotten.
        page->proxyPasswordEdit()->clear();
        QVERIFY2(page->apply(), qPrintable(page->errorText()));
        QVERIFY(!QFile::exists(secretsFile));
        QVERIFY(!f.service->config().upstreamProxy.contains(password));
    }

    void startAtLoginWritesAutostartEntry()
    {
        Fixture f;
        QVERIFY(f.setUp());
        const QString entry = XdgAutostartManager::entryPath();
        QVERIFY(entry.startsWith(f.dir.path())); // XDG_CONFIG_HOME is respected
        SettingsPage *page = f.window->settingsPage();
        page->startAtLoginCheck()->setChecked(true);
        page->startMinimizedCheck()->setChecked(true);
        QVERIFY(page->apply());
        QVERIFY(QFile::exists(entry));
        QFile file(entry);
        QVERIFY(file.open(QIODevice::ReadOnly));
        QVERIFY(file.readAll().contains("Exec=/usr/bin/keyrelay"));
        QCOMPARE(f.settings->value(Setting::StartAtLogin).toBool(), true);
        QCOMPARE(f.settings->value(Setting::StartMinimized).toBool(), true);
        page->startAtLoginCheck()->setChecked(false);
        QVERIFY(page->apply());
        QVERIFY(!QFile::exists(entry));
    }

    void startStopFromWindow()
    {
        Fixture f;
        QVERIFY(f.setUp());
        f.window->stopProxy();
        QCOMPARE(f.service->state(), ProxyService::State::Stopped);
        QVERIFY(f.window->stateText().contains(QStringLiteral("Stopped")));
        f.window->startProxy();
        QCOMPARE(f.service->state(), ProxyService::State::Running);
    }

    void closeHidesWithTray()
    {
        Fixture f;
        QVERIFY(f.setUp());
        f.window->setHideOnClose(true);
        f.window->show();
        QVERIFY(QTest::qWaitForWindowExposed(f.window.get()));
        f.window->close();
        QVERIFY(!f.window->isVisible());
        f.window->bringToFront();
        QVERIFY(f.window->isVisible());
    }
};

QTEST_MAIN(TestMainWindow)
#include "tst_mainwindow.moc"

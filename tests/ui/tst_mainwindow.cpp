// The main window against a real ProxyService and a mock upstream: log, settings, errors, the status line,
// keyboard. With KEYRELAY_SCREENSHOT_DIR set, screenshots() saves the degraded status line and the pending
// settings there.
#include "autostartmanager.h"
#include "keyspage.h"
#include "keystore.h"
#include "keytablemodel.h"
#include "logmodel.h"
#include "logpage.h"
#include "mainwindow.h"
#include "mockupstream.h"
#include "proxyclient.h"
#include "proxycredentials.h"
#include "proxyservice.h"
#include "secretstore.h"
#include "servicestatus.h"
#include "settingspage.h"
#include "settingsregistry.h"
#include "trayicon.h"
#include "usagepage.h"
#include "usagestore.h"

#include <QAbstractButton>
#include <QAccessible>
#include <QApplication>
#include <QCheckBox>
#include <QClipboard>
#include <QComboBox>
#include <QDir>
#include <QGuiApplication>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QLineEdit>
#include <QMenu>
#include <QMessageBox>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QScrollArea>
#include <QScrollBar>
#include <QSignalSpy>
#include <QSpinBox>
#include <QSpontaneKeyEvent>
#include <QStandardPaths>
#include <QTabWidget>
#include <QTableView>
#include <QTcpServer>
#include <QTemporaryDir>
#include <QTest>
#include <QTimer>
#include <QWheelEvent>

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
    std::unique_ptr<UsageStore> usage; ///< only with setUp(..., true)
    std::unique_ptr<MainWindow> window;
    QNetworkAccessManager client;

    bool setUp(quint16 port = 0, bool withUsage = false)
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
        if (withUsage) {
            usage = std::make_unique<UsageStore>(UsageStore::pathNextTo(settings->fileName()));
            service->setUsageStore(usage.get());
        }
        autostart = std::make_unique<XdgAutostartManager>(QStringLiteral("/usr/bin/keyrelay"));
        window = std::make_unique<MainWindow>(settings.get(), &pool, store.get(), service.get(),
                                              autostart.get(), usage.get());
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

/// Every label of the window's status line that is shown, joined.
QString statusLineText(MainWindow *window)
{
    QStringList texts;
    const QList<QLabel *> labels = window->centralWidget()->findChildren<QLabel *>();
    for (QLabel *label : labels) {
        if (label->isVisibleTo(window) && !window->tabs()->isAncestorOf(label))
            texts << label->text();
    }
    return texts.join(QLatin1Char('\n'));
}

/// Answers the next modal message box (the unsaved-settings prompt) with @p button, once it shows.
void answerPrompt(QMessageBox::StandardButton button, bool *asked)
{
    *asked = false;
    auto *poll = new QTimer;
    poll->setInterval(10);
    QObject::connect(poll, &QTimer::timeout, poll, [poll, button, asked] {
        auto *box = qobject_cast<QMessageBox *>(QApplication::activeModalWidget());
        if (!box)
            return;
        *asked = true;
        poll->stop();
        poll->deleteLater();
        box->button(button)->click();
    });
    poll->start();
}

/// Sends a wheel turn (one notch down) to @p widget, as the mouse over it would.
bool wheelDown(QWidget *widget)
{
    const QPointF pos = QRectF(widget->rect()).center();
    QWheelEvent event(pos, widget->mapToGlobal(pos), QPoint(), QPoint(0, -120), Qt::NoButton, Qt::NoModifier,
                      Qt::NoScrollPhase, false);
    // Only a spontaneous wheel event goes on to the parents (sendEvent() would make it not spontaneous).
    QSpontaneKeyEvent::setSpontaneous(&event);
    QApplication::instance()->notify(widget, &event);
    return event.isAccepted();
}

QString accessibleName(QWidget *widget)
{
    QAccessibleInterface *iface = QAccessible::queryAccessibleInterface(widget);
    return iface ? iface->text(QAccessible::Name) : QString();
}
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
        // Said where the user clicked, and not offered again for that site.
        QVERIFY2(page->noticeText().contains(QLatin1String("https://bettergpt.chat")),
                 qPrintable(page->noticeText()));
        page->view()->selectRow(0);
        QVERIFY(page->allowWebsiteButton()->isHidden());
        QCOMPARE(postThrough(&f.client, endpoint, chatBody(), QStringLiteral("/v1/chat/completions"), origin)
                     .status,
                 200);
        QCOMPARE(f.upstream.requestCount(), 1);
    }

    void addedKeysAreCheckedBeforeTheFirstChat()
    {
        // Keys pasted into the Keys page get one model-list check each (no tokens), so the table shows which
        // work before any chat (issue 15, item 15).
        Fixture f;
        QVERIFY(f.setUp());
        const QString good = QStringLiteral("sk-pasted-good-key-0000000001");
        const QString bad = QStringLiteral("sk-pasted-bad-key-00000000002");
        f.upstream.setHandler([bad](const it::RecordedRequest &request) {
            if (request.header("Authorization") == "Bearer " + bad.toUtf8())
                return it::MockResponse::json(
                    401, R"({"error":{"message":"Incorrect API key provided","code":"invalid_api_key"}})");
            return it::MockResponse::json(200, R"({"object":"list","data":[]})");
        });
        KeyTableModel *model = f.window->keysPage()->model();
        QCOMPARE(model->addKeys(good + QLatin1Char('\n') + bad), 2);
        const auto healthOf = [&f](const QString &secret) {
            for (const KeyStatus &status : f.pool.snapshot()) {
                if (status.id == KeyPool::keyId(secret))
                    return status.health;
            }
            return KeyHealth::Unknown;
        };
        QTRY_COMPARE_WITH_TIMEOUT(healthOf(bad), KeyHealth::Invalid, 5000);
        QTRY_COMPARE_WITH_TIMEOUT(healthOf(good), KeyHealth::Ok, 5000);
        int modelListChecks = 0;
        for (const it::RecordedRequest &request : f.upstream.requests()) {
            QCOMPARE(request.target, QByteArray("/v1/models"));
            ++modelListChecks;
        }
        QCOMPARE(modelListChecks, 2); // one each, the fixture's own key not at all
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
        QVERIFY(f.window->detailText().contains(QString::number(squatter.serverPort())));
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

    // Issue 15, item 6: Stop -> Start from the tray; the status line and the tray tell the same state.
    void stopStartFromTrayKeepsOneState()
    {
        Fixture f;
        QVERIFY(f.setUp());
        TrayIcon tray;
        tray.bind(f.window->serviceStatus());
        connect(&tray, &TrayIcon::startRequested, f.window.get(), &MainWindow::startProxy);
        connect(&tray, &TrayIcon::stopRequested, f.window.get(), &MainWindow::stopProxy);
        QAction *startStop = tray.menu()->actions().at(2);
        QCOMPARE(startStop->text(), QStringLiteral("Stop proxy"));

        startStop->trigger();
        QCOMPARE(f.service->state(), ProxyService::State::Stopped);
        QVERIFY(f.window->stateText().contains(QStringLiteral("Stopped")));
        QVERIFY(statusLineText(f.window.get()).contains(QStringLiteral("The proxy is stopped")));
        QCOMPARE(tray.state(), IndicatorState::Stopped);
        QVERIFY(tray.systemTrayIcon()->toolTip().contains(QStringLiteral("stopped")));
        QCOMPARE(startStop->text(), QStringLiteral("Start proxy"));

        startStop->trigger();
        QCOMPARE(f.service->state(), ProxyService::State::Running);
        QVERIFY(f.window->stateText().contains(QStringLiteral("Running")));
        // No label still says it is stopped.
        QVERIFY2(!statusLineText(f.window.get()).contains(QStringLiteral("stopped")),
                 qPrintable(statusLineText(f.window.get())));
        QCOMPARE(tray.state(), IndicatorState::Running);
        QVERIFY(tray.systemTrayIcon()->toolTip().contains(f.service->clientBaseUrl()));
        QCOMPARE(startStop->text(), QStringLiteral("Stop proxy"));
        QCOMPARE(f.window->endpointText(), f.service->clientBaseUrl());
    }

    // Item 8: an upstream that fails every request shows as "running, with problems" in the status line
    // and the tray, and recovers once requests succeed again.
    void upstreamDownShowsDegraded()
    {
        Fixture f;
        QVERIFY(f.setUp());
        TrayIcon tray;
        tray.bind(f.window->serviceStatus());
        bool down = true;
        f.upstream.setHandler([&down](const it::RecordedRequest &) {
            return down ? it::MockResponse::json(503, R"({"error":{"message":"overloaded"}})")
                        : it::MockResponse::json(200, chatCompletion());
        });
        QCOMPARE(postThrough(&f.client, f.service->endpointUrl(), chatBody()).status, 503);
        QCOMPARE(postThrough(&f.client, f.service->endpointUrl(), chatBody()).status, 503);
        QCOMPARE(postThrough(&f.client, f.service->endpointUrl(), chatBody()).status, 503);
        QTRY_COMPARE(f.window->serviceStatus()->state(), ServiceStatus::State::Degraded);
        QVERIFY(f.window->stateText().contains(QStringLiteral("problems")));
        QVERIFY2(f.window->detailText().contains(QStringLiteral("upstream is failing")),
                 qPrintable(f.window->detailText()));
        QCOMPARE(tray.state(), IndicatorState::Degraded);
        QVERIFY(tray.systemTrayIcon()->toolTip().contains(QStringLiteral("upstream is failing")));
        QCOMPARE(tray.menu()->actions().at(2)->text(), QStringLiteral("Stop proxy")); // still running

        down = false;
        QCOMPARE(postThrough(&f.client, f.service->endpointUrl(), chatBody()).status, 200);
        QCOMPARE(postThrough(&f.client, f.service->endpointUrl(), chatBody()).status, 200);
        QTRY_COMPARE(f.window->serviceStatus()->state(), ServiceStatus::State::Running);
        QVERIFY(f.window->detailText().isEmpty());
        QCOMPARE(tray.state(), IndicatorState::Running);
    }

    // Item 8: an upstream that cannot be reached (KeyRelay answers 502 upstream_unreachable) is a problem.
    void unreachableUpstreamShowsDegraded()
    {
        Fixture f;
        QVERIFY(f.setUp());
        SettingsPage *page = f.window->settingsPage();
        page->upstreamEdit()->setText(QStringLiteral("http://127.0.0.1:%1").arg(freePort()));
        QVERIFY2(page->apply(), qPrintable(page->errorText()));
        QCOMPARE(postThrough(&f.client, f.service->endpointUrl(), chatBody()).status, 502);
        QCOMPARE(postThrough(&f.client, f.service->endpointUrl(), chatBody()).status, 502);
        QTRY_COMPARE(f.window->serviceStatus()->state(), ServiceStatus::State::Degraded);
        QVERIFY2(f.window->detailText().contains(QStringLiteral("2 of the last 2 requests failed")),
                 qPrintable(f.window->detailText()));

        // Settings that point elsewhere start afresh.
        page->upstreamEdit()->setText(f.upstream.url().toString());
        QVERIFY(page->apply());
        QCOMPARE(f.window->serviceStatus()->state(), ServiceStatus::State::Running);
        QCOMPARE(postThrough(&f.client, f.service->endpointUrl(), chatBody()).status, 200);
    }

    // Item 8: most keys unusable is a problem too, said in the status line.
    void mostKeysUnusableShowsDegraded()
    {
        Fixture f;
        QVERIFY(f.setUp());
        const QStringList keys { QStringLiteral("sk-a-11111111111111111111111111111111"),
                                 QStringLiteral("sk-b-22222222222222222222222222222222"),
                                 QStringLiteral("sk-c-33333333333333333333333333333333") };
        f.pool.setKeys({ { keys.at(0), QString(), true },
                         { keys.at(1), QString(), true },
                         { keys.at(2), QString(), true } });
        QCOMPARE(f.window->serviceStatus()->state(), ServiceStatus::State::Running);
        f.pool.report(KeyPool::keyId(keys.at(0)), QString(), KeyVerdict::Invalid, -1, QStringLiteral("401"));
        QTest::qWait(0);
        QCOMPARE(f.window->serviceStatus()->state(), ServiceStatus::State::Running); // one of three
        f.pool.report(KeyPool::keyId(keys.at(1)), QString(), KeyVerdict::Exhausted, -1,
                      QStringLiteral("402"));
        QTRY_COMPARE(f.window->serviceStatus()->state(), ServiceStatus::State::Degraded);
        QVERIFY2(f.window->detailText().contains(QStringLiteral("2 of 3 enabled keys")),
                 qPrintable(f.window->detailText()));
        f.pool.setKeys({ { keys.at(2), QString(), true } });
        QTRY_COMPARE(f.window->serviceStatus()->state(), ServiceStatus::State::Running);
    }

    // Item 9: the status line's "Requests today" is the usage store's figure, the same as the Usage page's,
    // also right after a restart.
    void requestsTodayIsTheUsagePagesFigure()
    {
        Fixture f;
        {
            // Earlier today, before a restart: 9 requests booked.
            QVERIFY(f.dir.isValid());
            UsageStore earlier(UsageStore::pathNextTo(f.dir.filePath(QStringLiteral("KeyRelay.ini"))));
            for (int i = 0; i < 9; ++i)
                earlier.record(
                    { KeyPool::keyId(Key), KeyPool::mask(Key), QStringLiteral("gpt-test"), 5, 2, 7 });
            QVERIFY(earlier.flush());
        }
        QVERIFY(f.setUp(0, true));
        QCOMPARE(f.window->requestsToday(), quint64(9));
        QVERIFY2(f.window->requestsText().contains(QStringLiteral("9")),
                 qPrintable(f.window->requestsText()));
        QVERIFY(f.window->usagePage()->summaryLabel()->text().contains(QStringLiteral("requests: 9")));

        QCOMPARE(postThrough(&f.client, f.service->endpointUrl(), chatBody()).status, 200);
        // A request KeyRelay refuses itself (a website that is not allowed) is not one of them.
        QCOMPARE(postThrough(&f.client, f.service->endpointUrl(), chatBody(),
                             QStringLiteral("/v1/chat/completions"), { { "Origin", "https://evil.example" } })
                     .status,
                 403);
        QCOMPARE(postThrough(&f.client, f.service->endpointUrl(), chatBody()).status, 200);
        QTRY_COMPARE(f.window->requestsToday(), quint64(11));
        QTRY_VERIFY2(f.window->requestsText().contains(QStringLiteral("11")),
                     qPrintable(f.window->requestsText()));
        f.window->usagePage()->refresh();
        QVERIFY2(f.window->usagePage()->summaryLabel()->text().contains(QStringLiteral("requests: 11")),
                 qPrintable(f.window->usagePage()->summaryLabel()->text()));
    }

    // Item 11: the wheel over a spin box that has no focus scrolls the page and leaves the value alone.
    void wheelScrollsThePageNotTheSpinBox()
    {
        Fixture f;
        QVERIFY(f.setUp());
        f.window->resize(760, 420);
        f.window->show();
        QVERIFY(QTest::qWaitForWindowExposed(f.window.get()));
        f.window->showPage(MainWindow::SettingsTab);
        SettingsPage *page = f.window->settingsPage();
        auto *scroll = page->findChild<QScrollArea *>();
        QVERIFY(scroll);
        QVERIFY(scroll->verticalScrollBar()->maximum() > 0);
        QSpinBox *spin = page->connectTimeoutSpin();
        QVERIFY(spin->value() > spin->minimum()); // so that a wheel turn down would change it
        const int before = spin->value();
        scroll->verticalScrollBar()->setValue(0);
        const int position = scroll->verticalScrollBar()->value();
        page->listenHostEdit()->setFocus();
        wheelDown(spin);
        QCOMPARE(spin->value(), before);
        QVERIFY(scroll->verticalScrollBar()->value() > position); // the page scrolled instead
        QComboBox *combo = page->proxyTypeCombo();
        const int index = combo->currentIndex();
        wheelDown(combo);
        QCOMPARE(combo->currentIndex(), index);
        QVERIFY(!page->hasPendingChanges());

        // With the focus, the wheel is the spin box's.
        spin->setFocus();
        spin->setValue(5);
        wheelDown(spin);
        QCOMPARE(spin->value(), 4);
    }

    // Item 11: edits are pending until applied; "Settings applied." never stands beside an unapplied edit.
    void settingsShowPendingChanges()
    {
        Fixture f;
        QVERIFY(f.setUp());
        SettingsPage *page = f.window->settingsPage();
        QVERIFY(!page->hasPendingChanges());
        QVERIFY(page->pendingText().isEmpty());
        QVERIFY(!page->applyButton()->isEnabled());
        QVERIFY(!page->revertButton()->isEnabled());

        page->maxPerKeySpin()->setValue(2);
        QVERIFY(page->hasPendingChanges());
        QCOMPARE(page->pendingText(), QStringLiteral("Unsaved changes"));
        QVERIFY(page->applyButton()->isEnabled());
        QVERIFY(page->revertButton()->isEnabled());
        QVERIFY(page->apply());
        QCOMPARE(page->messageText(), QStringLiteral("Settings applied."));
        QVERIFY(!page->hasPendingChanges());
        QVERIFY(!page->applyButton()->isEnabled());

        const quint16 port = f.service->port();
        page->listenPortSpin()->setValue(port == 65535 ? port - 1 : port + 1);
        QVERIFY(page->hasPendingChanges());
        QVERIFY2(page->messageText().isEmpty(), qPrintable(page->messageText()));
        QCOMPARE(f.service->port(), port); // nothing applied yet
        // Back to the stored value: nothing pending.
        page->listenPortSpin()->setValue(f.settings->value(Setting::ListenPort).toInt());
        QVERIFY(!page->hasPendingChanges());

        page->upstreamEdit()->setText(QStringLiteral("https://elsewhere.example"));
        QTest::mouseClick(page->revertButton(), Qt::LeftButton);
        QVERIFY(!page->hasPendingChanges());
        QCOMPARE(page->upstreamEdit()->text(), f.upstream.url().toString());

        // Allowing a website from the log stores that alone; other edits stay pending.
        page->maxPerKeySpin()->setValue(3);
        QVERIFY(page->allowWebsite(QStringLiteral("https://chat.example")));
        QVERIFY(page->hasPendingChanges());
        QCOMPARE(f.settings->value(Setting::MaxConcurrentPerKey).toInt(), 2);
        page->maxPerKeySpin()->setValue(2);
        QVERIFY(!page->hasPendingChanges());
    }

    // Item 11: leaving the page or closing the window with pending changes asks first.
    void leavingWithPendingChangesAsks()
    {
        Fixture f;
        QVERIFY(f.setUp());
        f.window->setHideOnClose(true);
        f.window->show();
        QVERIFY(QTest::qWaitForWindowExposed(f.window.get()));
        f.window->showPage(MainWindow::SettingsTab);
        SettingsPage *page = f.window->settingsPage();
        page->maxPerKeySpin()->setValue(4);

        bool asked = false;
        answerPrompt(QMessageBox::Cancel, &asked);
        f.window->showPage(MainWindow::KeysTab);
        QVERIFY(asked);
        QCOMPARE(f.window->tabs()->currentWidget(), page); // stayed
        QVERIFY(page->hasPendingChanges());

        answerPrompt(QMessageBox::Cancel, &asked);
        f.window->close();
        QVERIFY(asked);
        QVERIFY(f.window->isVisible());

        answerPrompt(QMessageBox::Discard, &asked);
        f.window->showPage(MainWindow::LogTab);
        QVERIFY(asked);
        QCOMPARE(f.window->tabs()->currentWidget(), f.window->logPage());
        QVERIFY(!page->hasPendingChanges());
        QCOMPARE(page->maxPerKeySpin()->value(), 0);

        f.window->showPage(MainWindow::SettingsTab);
        page->maxPerKeySpin()->setValue(4);
        answerPrompt(QMessageBox::Apply, &asked);
        f.window->close();
        QVERIFY(asked);
        QVERIFY(!f.window->isVisible());
        QCOMPARE(f.settings->value(Setting::MaxConcurrentPerKey).toInt(), 4);

        // Quitting (Ctrl+Q, the tray's Quit) asks too; Cancel keeps KeyRelay running.
        f.window->bringToFront();
        f.window->showPage(MainWindow::SettingsTab);
        page->maxPerKeySpin()->setValue(5);
        QSignalSpy quit(f.window.get(), &MainWindow::quitRequested);
        answerPrompt(QMessageBox::Cancel, &asked);
        f.window->requestQuit();
        QVERIFY(asked);
        QCOMPARE(quit.count(), 0);
        answerPrompt(QMessageBox::Discard, &asked);
        f.window->requestQuit();
        QVERIFY(asked);
        QCOMPARE(quit.count(), 1);
        QCOMPARE(f.settings->value(Setting::MaxConcurrentPerKey).toInt(), 4);

        // Nothing pending: no question.
        f.window->bringToFront();
        f.window->showPage(MainWindow::KeysTab);
        QVERIFY(!QApplication::activeModalWidget());
    }

    // Item 12: Ctrl+W closes (hides to the tray), Ctrl+Q quits.
    void closeAndQuitShortcuts()
    {
        Fixture f;
        QVERIFY(f.setUp());
        f.window->setHideOnClose(true);
        f.window->show();
        QApplication::setActiveWindow(f.window.get());
        QVERIFY(QTest::qWaitForWindowActive(f.window.get()));
        QSignalSpy quit(f.window.get(), &MainWindow::quitRequested);
        QTest::keyClick(f.window.get(), Qt::Key_Q, Qt::ControlModifier);
        QCOMPARE(quit.count(), 1);
        QTest::keyClick(f.window.get(), Qt::Key_W, Qt::ControlModifier);
        QVERIFY(!f.window->isVisible());
    }

    // Item 12: the key table is one Tab stop (arrow keys inside), in the page's order, and each row's Test
    // button is named after its key.
    void keyTableIsOneTabStop()
    {
        Fixture f;
        QVERIFY(f.setUp());
        const QString second = QStringLiteral("sk-proj-YYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYabcd");
        f.pool.setKeys({ { Key, QString(), true }, { second, QString(), true } });
        f.window->show();
        QApplication::setActiveWindow(f.window.get());
        QVERIFY(QTest::qWaitForWindowActive(f.window.get()));
        f.window->showPage(MainWindow::KeysTab);
        KeysPage *keys = f.window->keysPage();
        QTableView *view = keys->view();
        QCOMPARE(view->model()->rowCount(), 2);

        keys->pasteBox()->setFocus();
        QTest::keyClicks(keys->pasteBox(), QStringLiteral("sk-new"));
        QTest::keyClick(QApplication::focusWidget(), Qt::Key_Tab);
        QCOMPARE(QApplication::focusWidget(), keys->addButton());
        QTest::keyClick(QApplication::focusWidget(), Qt::Key_Tab);
        QCOMPARE(QApplication::focusWidget(), view);
        view->selectRow(0);
        QTest::keyClick(view, Qt::Key_Tab);
        QCOMPARE(QApplication::focusWidget(), keys->removeButton()); // one press leaves the table

        // Inside, the arrow keys move.
        view->setFocus();
        view->setCurrentIndex(view->model()->index(0, 0));
        QTest::keyClick(view, Qt::Key_Right);
        QCOMPARE(view->currentIndex().column(), 1);
        QTest::keyClick(view, Qt::Key_Down);
        QCOMPARE(view->currentIndex().row(), 1);

        // Row buttons: named after their key, reached through their cell.
        QWidget *test = view->indexWidget(view->model()->index(1, KeyTableModel::TestColumn));
        QVERIFY(test);
        QCOMPARE(accessibleName(test), QStringLiteral("Test key %1").arg(KeyPool::mask(second)));
        QCOMPARE(test->focusPolicy(), Qt::NoFocus);
        f.window->keysPage()->model()->setData(view->model()->index(1, KeyTableModel::LabelColumn),
                                               QStringLiteral("backup"));
        QTRY_COMPARE(accessibleName(test), QStringLiteral("Test key backup"));
        view->setCurrentIndex(view->model()->index(1, KeyTableModel::TestColumn));
        QTest::keyClick(view, Qt::Key_Return);
        QVERIFY(keys->model()->isTesting(1));
        // Space switches the key in the Enabled column.
        view->setCurrentIndex(view->model()->index(0, KeyTableModel::EnabledColumn));
        QTest::keyClick(view, Qt::Key_Space);
        QVERIFY(!f.pool.keys().at(0).enabled);
    }

    // Item 12: every input of every page has an accessible name (not only a placeholder).
    void everyInputHasAnAccessibleName()
    {
        Fixture f;
        QVERIFY(f.setUp());
        QStringList unnamed;
        const QList<QWidget *> widgets = f.window->findChildren<QWidget *>();
        for (QWidget *widget : widgets) {
            const bool input = qobject_cast<QLineEdit *>(widget) || qobject_cast<QPlainTextEdit *>(widget)
                || qobject_cast<QAbstractSpinBox *>(widget) || qobject_cast<QComboBox *>(widget)
                || qobject_cast<QAbstractButton *>(widget);
            // Parts of other widgets (a spin box's line edit, a line edit's clear button, a table's corner).
            if (!input || widget->parentWidget()->inherits("QAbstractSpinBox")
                || widget->parentWidget()->inherits("QComboBox")
                || widget->parentWidget()->inherits("QLineEdit") || widget->inherits("QTableCornerButton"))
                continue;
            if (accessibleName(widget).trimmed().isEmpty())
                unnamed << QStringLiteral("%1 %2").arg(QLatin1String(widget->metaObject()->className()),
                                                       widget->objectName());
        }
        QVERIFY2(unnamed.isEmpty(), qPrintable(unnamed.join(QStringLiteral(", "))));
        QVERIFY(!f.window->keysPage()->pasteBox()->accessibleDescription().isEmpty());
    }

    // With KEYRELAY_SCREENSHOT_DIR set: screenshot-degraded.png (the upstream fails every request) and
    // screenshot-settings-pending.png (an edited, unapplied port) there.
    void screenshots()
    {
        const QString out = qEnvironmentVariable("KEYRELAY_SCREENSHOT_DIR");
        if (out.isEmpty())
            QSKIP("set KEYRELAY_SCREENSHOT_DIR to save docs/screenshot-degraded.png and "
                  "docs/screenshot-settings-pending.png");
        Fixture f;
        QVERIFY(f.setUp());
        const QStringList keys { QStringLiteral("sk-proj-a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2"),
                                 QStringLiteral("sk-proj-f00dbabe0000111122223333444455556666777788") };
        f.pool.setKeys({ { keys.at(0), QStringLiteral("Personal"), true },
                         { keys.at(1), QStringLiteral("Team shared"), true } });
        f.upstream.setHandler([](const it::RecordedRequest &) {
            return it::MockResponse::json(503, R"({"error":{"message":"The server is overloaded"}})");
        });
        for (int i = 0; i < 3; ++i)
            QCOMPARE(postThrough(&f.client, f.service->endpointUrl(), chatBody()).status, 503);
        QTRY_COMPARE(f.window->serviceStatus()->state(), ServiceStatus::State::Degraded);
        f.window->resize(1100, 700);
        f.window->show();
        QVERIFY(QTest::qWaitForWindowExposed(f.window.get()));
        f.window->showPage(MainWindow::LogTab);
        QTRY_COMPARE(f.window->logPage()->view()->model()->rowCount(), 3); // the log's batched update
        QVERIFY(f.window->grab().save(QDir(out).filePath(QStringLiteral("screenshot-degraded.png"))));

        f.upstream.setHandler(
            [](const it::RecordedRequest &) { return it::MockResponse::json(200, chatCompletion()); });
        f.window->settingsPage()->revert();
        f.window->showPage(MainWindow::SettingsTab);
        f.window->settingsPage()->listenPortSpin()->setValue(9001);
        QCoreApplication::processEvents();
        QVERIFY(f.window->grab().save(QDir(out).filePath(QStringLiteral("screenshot-settings-pending.png"))));
    }

    // Item 12: Tab walks the Settings page in the order it reads.
    void settingsTabOrderFollowsThePage()
    {
        Fixture f;
        QVERIFY(f.setUp());
        f.window->show();
        QApplication::setActiveWindow(f.window.get());
        QVERIFY(QTest::qWaitForWindowActive(f.window.get()));
        f.window->showPage(MainWindow::SettingsTab);
        SettingsPage *page = f.window->settingsPage();
        page->proxyTypeCombo()->setCurrentIndex(2); // HTTP: the proxy fields are enabled
        page->proxyHostEdit()->setText(QStringLiteral("proxy.example"));
        const QList<QWidget *> expected { page->listenHostEdit(),    page->listenPortSpin(),
                                          page->upstreamEdit(),      page->proxyTypeCombo(),
                                          page->proxyHostEdit(),     page->proxyPortSpin(),
                                          page->proxyUserEdit(),     page->proxyPasswordEdit(),
                                          page->stripPrefixesEdit(), page->connectTimeoutSpin(),
                                          page->idleTimeoutSpin(),   page->reorderCheck() };
        page->listenHostEdit()->setFocus();
        QList<QWidget *> walked { QApplication::focusWidget() };
        for (int i = 1; i < expected.size(); ++i) {
            QTest::keyClick(QApplication::focusWidget(), Qt::Key_Tab);
            walked << QApplication::focusWidget();
        }
        QCOMPARE(walked, expected);
        // The buttons at the bottom: Revert before Apply, as they are shown.
        page->clientTokenEdit()->setFocus();
        QWidget *from = page->startAtLoginCheck()->isVisibleTo(page) ? page->startAtLoginCheck()
                                                                     : page->startMinimizedCheck();
        from->setFocus();
        QTest::keyClick(from, Qt::Key_Tab);
        QCOMPARE(QApplication::focusWidget(), page->revertButton());
        QTest::keyClick(QApplication::focusWidget(), Qt::Key_Tab);
        QCOMPARE(QApplication::focusWidget(), page->applyButton());
    }
};

QTEST_MAIN(TestMainWindow)
#include "tst_mainwindow.moc"

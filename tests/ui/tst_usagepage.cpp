// The Usage page: 30 days in the chart, stacking by key or model, the table, CSV export, refreshes.
// With KEYRELAY_SCREENSHOT_DIR set, screenshot() also saves screenshot-usage.png of a window with data there.
#include "csv.h"
#include "keypool.h"
#include "mainwindow.h"
#include "proxyservice.h"
#include "settingsregistry.h"
#include "usagepage.h"
#include "usagestore.h"

#include <QBarCategoryAxis>
#include <QBarSet>
#include <QChart>
#include <QComboBox>
#include <QDir>
#include <QFile>
#include <QLabel>
#include <QLocale>
#include <QPushButton>
#include <QSignalSpy>
#include <QStackedBarSeries>
#include <QStandardItemModel>
#include <QStandardPaths>
#include <QTabWidget>
#include <QTableView>
#include <QTemporaryDir>
#include <QTest>
#include <QTranslator>

#include <memory>

using namespace keyrelay;
using GroupBy = UsageStore::GroupBy;

namespace {

const QDate Today(2026, 11, 28);

UsageEvent usage(const QString &label, const QString &model, qint64 prompt, qint64 completion)
{
    UsageEvent e;
    e.keyId = KeyPool::keyId(QStringLiteral("sk-test-") + label);
    e.keyLabel = label;
    e.model = model;
    e.promptTokens = prompt;
    e.completionTokens = completion;
    e.totalTokens = prompt + completion;
    return e;
}

/// A store in a temporary folder whose clock the test sets.
struct Fixture
{
    QTemporaryDir dir;
    QDateTime now { Today, QTime(15, 0) };
    std::unique_ptr<UsageStore> store;

    explicit Fixture(int createdDaysAgo = 0)
    {
        now = QDateTime(Today.addDays(-createdDaysAgo), QTime(9, 0));
        store = std::make_unique<UsageStore>(dir.filePath(QStringLiteral("usage.sqlite")),
                                             [this] { return now; });
        now = QDateTime(Today, QTime(15, 0));
        store->setFlushPolicy(60000, 100000); // the tests flush
    }
    /// Records @p e as if it happened @p daysAgo days before today.
    void recordOn(int daysAgo, const UsageEvent &e)
    {
        now = QDateTime(Today.addDays(-daysAgo), QTime(15, 0));
        store->record(e);
        now = QDateTime(Today, QTime(15, 0));
    }
    /// Two keys and two models over 40 days (the oldest ten outside the chart).
    void seed()
    {
        for (int daysAgo = 0; daysAgo < 40; daysAgo += 3) {
            recordOn(daysAgo,
                     usage(QStringLiteral("Personal"), QStringLiteral("gpt-4o"), 1000 + daysAgo, 500));
            recordOn(daysAgo, usage(QStringLiteral("Team shared"), QStringLiteral("gpt-4o-mini"), 300, 100));
            recordOn(daysAgo, usage(QStringLiteral("Personal"), QStringLiteral("gpt-4o-mini"), 20, 10));
        }
        store->flush();
    }
};

QStringList setLabels(const QStackedBarSeries *series)
{
    QStringList labels;
    const QList<QBarSet *> sets = series->barSets();
    for (const QBarSet *set : sets)
        labels << set->label();
    return labels;
}

qreal stackedAt(const QStackedBarSeries *series, int index)
{
    qreal sum = 0;
    const QList<QBarSet *> sets = series->barSets();
    for (const QBarSet *set : sets)
        sum += set->at(index);
    return sum;
}

QString readText(const QString &path)
{
    QFile file(path);
    return file.open(QIODevice::ReadOnly) ? QString::fromUtf8(file.readAll()) : QString();
}

} // namespace

class TestUsagePage : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void initTestCase()
    {
        QStandardPaths::setTestModeEnabled(true);
        QLocale::setDefault(QLocale(QLocale::English, QLocale::UnitedStates));
    }

    void chartHasOneCategoryPerDay()
    {
        Fixture f;
        UsagePage page(f.store.get());
        QCOMPARE(page.dayAxis()->count(), UsagePage::Days);
        QCOMPARE(page.dayAxis()->at(0), QStringLiteral("10-30"));
        QCOMPARE(page.dayAxis()->at(UsagePage::Days - 1), QStringLiteral("11-28"));
        QCOMPARE(page.series()->count(), 0); // nothing recorded yet
        QVERIFY(page.chart()->title().startsWith(QStringLiteral("No tokens")));

        f.seed();
        page.refresh();
        QCOMPARE(page.dayAxis()->count(), UsagePage::Days);
        // Each day's stack is that day's total in the store; days without usage are zero.
        for (int i = 0; i < UsagePage::Days; ++i) {
            const QDate day = Today.addDays(i - (UsagePage::Days - 1));
            qint64 expected = 0;
            const QList<UsageRow> rows = f.store->forDay(day, GroupBy::Key);
            for (const UsageRow &row : rows)
                expected += row.totalTokens;
            QCOMPARE(qint64(stackedAt(page.series(), i)), expected);
        }
        QCOMPARE(qint64(stackedAt(page.series(), UsagePage::Days - 1)), 1500 + 400 + 30);
    }

    void stackingByKeyOrModel()
    {
        Fixture f;
        f.seed();
        UsagePage page(f.store.get());
        QCOMPARE(page.groupBy(), GroupBy::Key);
        // Biggest first.
        QCOMPARE(setLabels(page.series()),
                 (QStringList { QStringLiteral("Personal"), QStringLiteral("Team shared") }));
        QCOMPARE(page.series()->barSets().at(0)->at(UsagePage::Days - 1), 1500.0 + 30.0);

        page.groupCombo()->setCurrentIndex(page.groupCombo()->findText(QStringLiteral("Model")));
        QCOMPARE(page.groupBy(), GroupBy::Model);
        QCOMPARE(setLabels(page.series()),
                 (QStringList { QStringLiteral("gpt-4o"), QStringLiteral("gpt-4o-mini") }));
        QCOMPARE(page.series()->barSets().at(1)->at(UsagePage::Days - 1), 400.0 + 30.0);
        QCOMPARE(page.model()->headerData(UsagePage::GroupColumn, Qt::Horizontal).toString(),
                 QStringLiteral("Model"));
    }

    void stackingByProvider()
    {
        Fixture f;
        UsageEvent openai = usage(QStringLiteral("Personal"), QStringLiteral("gpt-4o"), 1000, 500);
        openai.provider = QStringLiteral("openai");
        UsageEvent deepseek = usage(QStringLiteral("Team shared"), QStringLiteral("deepseek-chat"), 300, 100);
        deepseek.provider = QStringLiteral("deepseek");
        f.recordOn(0, openai);
        f.recordOn(0, deepseek);
        f.recordOn(1, deepseek);
        f.recordOn(0, usage(QStringLiteral("Personal"), QStringLiteral("gpt-4o"), 20, 10)); // no provider
        UsagePage page(f.store.get());
        page.setGroupBy(GroupBy::Provider);
        QCOMPARE(page.groupCombo()->currentText(), QStringLiteral("Provider"));
        QCOMPARE(setLabels(page.series()),
                 (QStringList { QStringLiteral("openai"), QStringLiteral("deepseek"),
                                QStringLiteral("default") }));
        QCOMPARE(page.series()->barSets().at(1)->at(UsagePage::Days - 1), 400.0);
        QCOMPARE(page.series()->barSets().at(1)->at(UsagePage::Days - 2), 400.0);
        QCOMPARE(page.model()->headerData(UsagePage::GroupColumn, Qt::Horizontal).toString(),
                 QStringLiteral("Provider"));
        QCOMPARE(page.model()->rowCount(), 4); // three providers today, one yesterday
        QCOMPARE(page.model()->item(0, UsagePage::GroupColumn)->text(), QStringLiteral("openai"));
        QCOMPARE(page.rows(), [&] {
            QList<UsageRow> rows = f.store->daily(UsagePage::Days, GroupBy::Provider);
            std::stable_sort(rows.begin(), rows.end(), [](const UsageRow &a, const UsageRow &b) {
                return a.day != b.day ? a.day > b.day : a.totalTokens > b.totalTokens;
            });
            return rows;
        }());
        QVERIFY(page.toCsv().startsWith(QStringLiteral("Day,Provider,")));
    }

    void keyColoursAreTheSameInEverySession()
    {
        // Two sessions in which a different key used the most: each key keeps its colour.
        Fixture first;
        first.recordOn(0, usage(QStringLiteral("Personal"), QStringLiteral("gpt-4o"), 1000, 0));
        first.recordOn(0, usage(QStringLiteral("Team shared"), QStringLiteral("gpt-4o"), 10, 0));
        first.store->flush();
        Fixture second;
        second.recordOn(0, usage(QStringLiteral("Personal"), QStringLiteral("gpt-4o"), 10, 0));
        second.recordOn(0, usage(QStringLiteral("Team shared"), QStringLiteral("gpt-4o"), 1000, 0));
        second.store->flush();
        UsagePage one(first.store.get());
        UsagePage two(second.store.get());
        const auto colorOf = [](const UsagePage &page, const QString &label) {
            const QList<QBarSet *> sets = page.series()->barSets();
            for (QBarSet *set : sets) {
                if (set->label() == label)
                    return set->color();
            }
            return QColor();
        };
        QCOMPARE(setLabels(one.series()).first(), QStringLiteral("Personal"));
        QCOMPARE(setLabels(two.series()).first(), QStringLiteral("Team shared"));
        for (const QString &label : { QStringLiteral("Personal"), QStringLiteral("Team shared") }) {
            QVERIFY(colorOf(one, label).isValid());
            QCOMPARE(colorOf(one, label), colorOf(two, label));
        }
        QVERIFY(colorOf(one, QStringLiteral("Personal")) != colorOf(one, QStringLiteral("Team shared")));
        // From the key id (a fixed hash, not the process's seeded qHash): known for a given id.
        const QString id = KeyPool::keyId(QStringLiteral("sk-test-Personal"));
        QCOMPARE(UsagePage::colorFor(id), UsagePage::colorFor(QString(id)));
        const QHash<QString, QColor> colors
            = UsagePage::colorsFor({ id, KeyPool::keyId(QStringLiteral("sk-test-Team shared")) });
        QCOMPARE(colorOf(one, QStringLiteral("Personal")), colors.value(id));
    }

    void smallGroupsFoldIntoOther()
    {
        Fixture f;
        for (int i = 0; i < 11; ++i)
            f.recordOn(0,
                       usage(QStringLiteral("k"), QStringLiteral("model-%1").arg(i, 2, 10, QLatin1Char('0')),
                             100 * (i + 1), 0));
        UsagePage page(f.store.get());
        page.setGroupBy(GroupBy::Model);
        const QStringList labels = setLabels(page.series());
        QCOMPARE(labels.size(), UsagePage::MaxSeries);
        QCOMPARE(labels.first(), QStringLiteral("model-10"));
        QCOMPARE(labels.last(), QStringLiteral("Other"));
        // model-00..model-03 are the smallest four: 100 + 200 + 300 + 400.
        QCOMPARE(page.series()->barSets().last()->at(UsagePage::Days - 1), 1000.0);
        QCOMPARE(page.model()->rowCount(), 11); // the table keeps every model
    }

    void tableRowsMatchTheStore()
    {
        Fixture f;
        f.seed();
        UsagePage page(f.store.get());
        for (GroupBy by : { GroupBy::Key, GroupBy::Model }) {
            page.setGroupBy(by);
            const QList<UsageRow> stored = f.store->daily(UsagePage::Days, by);
            QCOMPARE(page.model()->rowCount(), stored.size());
            QCOMPARE(page.rows().size(), stored.size());
            for (int r = 0; r < page.model()->rowCount(); ++r) {
                const UsageRow &row = page.rows().at(r);
                QVERIFY(stored.contains(row));
                if (r > 0)
                    QVERIFY(page.rows().at(r - 1).day >= row.day); // newest first
                auto cell = [&](int column) {
                    return page.model()->item(r, column)->text();
                };
                QCOMPARE(cell(UsagePage::DayColumn), row.day.toString(Qt::ISODate));
                QCOMPARE(cell(UsagePage::GroupColumn), by == GroupBy::Key ? row.keyLabel : row.model);
                QCOMPARE(cell(UsagePage::RequestsColumn), QLocale().toString(row.requests));
                QCOMPARE(cell(UsagePage::PromptColumn), QLocale().toString(row.promptTokens));
                QCOMPARE(cell(UsagePage::CompletionColumn), QLocale().toString(row.completionTokens));
                QCOMPARE(cell(UsagePage::TotalColumn), QLocale().toString(row.totalTokens));
            }
        }
        QCOMPARE(page.model()->item(0, UsagePage::DayColumn)->text(), QStringLiteral("2026-11-28"));
        QVERIFY2(page.summaryLabel()->text().startsWith(QStringLiteral("Tokens today: 1,930 (requests: 3)")),
                 qPrintable(page.summaryLabel()->text()));
        // Since the store began: 14 days (every third of 40) of 1,930 tokens plus 0+3+…+39 more.
        QVERIFY2(page.summaryLabel()->text().endsWith(QStringLiteral(": 27,293")),
                 qPrintable(page.summaryLabel()->text()));
    }

    void refreshesWhenTheStoreFlushes()
    {
        Fixture f;
        f.seed();
        UsagePage page(f.store.get());
        page.resize(900, 600);
        page.show();
        QVERIFY(QTest::qWaitForWindowExposed(&page));
        const int before = page.model()->rowCount();

        f.store->record(usage(QStringLiteral("New key"), QStringLiteral("gpt-4o"), 1, 1));
        QCOMPARE(page.model()->rowCount(), before); // not before the batch is written
        QSignalSpy flushed(f.store.get(), &UsageStore::flushed);
        QVERIFY(f.store->flush());
        QTRY_COMPARE(page.model()->rowCount(), before + 1);
        QCOMPARE(flushed.count(), 1);

        // The Refresh button reads the store at once, pending events included.
        f.store->record(usage(QStringLiteral("Another key"), QStringLiteral("gpt-4o"), 1, 1));
        QTest::mouseClick(page.refreshButton(), Qt::LeftButton);
        QCOMPARE(page.model()->rowCount(), before + 2);

        // A hidden page catches up when it is shown again.
        page.hide();
        f.store->record(usage(QStringLiteral("Third key"), QStringLiteral("gpt-4o"), 1, 1));
        QVERIFY(f.store->flush());
        QTRY_COMPARE(flushed.count(), 2);
        QCOMPARE(page.model()->rowCount(), before + 2);
        page.show();
        QCOMPARE(page.model()->rowCount(), before + 3);
    }

    void csvField_data()
    {
        QTest::addColumn<QString>("text");
        QTest::addColumn<QString>("field");
        QTest::newRow("plain") << QStringLiteral("gpt-4o") << QStringLiteral("gpt-4o");
        QTest::newRow("empty") << QString() << QString();
        QTest::newRow("comma") << QStringLiteral("a,b") << QStringLiteral("\"a,b\"");
        QTest::newRow("quote") << QStringLiteral("say \"hi\"") << QStringLiteral("\"say \"\"hi\"\"\"");
        QTest::newRow("newline") << QStringLiteral("a\nb") << QStringLiteral("\"a\nb\"");
        QTest::newRow("equals") << QStringLiteral("=1+2") << QStringLiteral("'=1+2");
        QTest::newRow("plus") << QStringLiteral("+1") << QStringLiteral("'+1");
        QTest::newRow("minus") << QStringLiteral("-A1") << QStringLiteral("'-A1");
        QTest::newRow("negative number") << QStringLiteral("-12.5") << QStringLiteral("-12.5");
        QTest::newRow("lone minus") << QStringLiteral("-") << QStringLiteral("-");
        QTest::newRow("minus formula") << QStringLiteral("-1+2") << QStringLiteral("'-1+2");
        QTest::newRow("at") << QStringLiteral("@SUM(A1)") << QStringLiteral("'@SUM(A1)");
        QTest::newRow("tab") << QStringLiteral("\tx") << QStringLiteral("'\tx");
        QTest::newRow("carriage return") << QStringLiteral("\rx") << QStringLiteral("\"'\rx\"");
        QTest::newRow("formula with quotes")
            << QStringLiteral("=HYPERLINK(\"http://evil\",\"x\")")
            << QStringLiteral("\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\"");
        QTest::newRow("leading space") << QStringLiteral(" =x") << QStringLiteral("\" =x\"");
        QTest::newRow("inner minus") << QStringLiteral("gpt-4o-mini") << QStringLiteral("gpt-4o-mini");
    }

    void csvField()
    {
        QFETCH(QString, text);
        QFETCH(QString, field);
        QCOMPARE(keyrelay::csvField(text), field);
    }

    void csvExport()
    {
        Fixture f;
        f.recordOn(1, usage(QStringLiteral("=HYPERLINK(\"http://evil\")"), QStringLiteral("gpt-4o"), 10, 5));
        f.recordOn(0, usage(QStringLiteral("@work, main"), QStringLiteral("+model"), 7, 3));
        UsagePage page(f.store.get());
        QTemporaryDir dir;
        const QString path = dir.filePath(QStringLiteral("usage.csv"));
        QString error;
        QVERIFY2(page.exportCsv(path, &error), qPrintable(error));
        const QString expected
            = QStringLiteral("Day,Key,Requests,Prompt tokens,Completion tokens,Total tokens\r\n"
                             "2026-11-28,\"'@work, main\",1,7,3,10\r\n"
                             "2026-11-27,\"'=HYPERLINK(\"\"http://evil\"\")\",1,10,5,15\r\n");
        QCOMPARE(readText(path), expected);

        page.setGroupBy(GroupBy::Model);
        QCOMPARE(page.toCsv(),
                 QStringLiteral("Day,Model,Requests,Prompt tokens,Completion tokens,Total tokens\r\n"
                                "2026-11-28,'+model,1,7,3,10\r\n"
                                "2026-11-27,gpt-4o,1,10,5,15\r\n"));

        QVERIFY(!page.exportCsv(dir.filePath(QStringLiteral("missing/folder/usage.csv")), &error));
        QVERIFY(!error.isEmpty());
    }

    void showsTheStoresProblem()
    {
        QTemporaryDir dir;
        QFile blocker(dir.filePath(QStringLiteral("blocker")));
        QVERIFY(blocker.open(QIODevice::WriteOnly));
        blocker.close();
        UsageStore store(blocker.fileName() + QStringLiteral("/usage.sqlite"));
        UsagePage page(&store);
        QVERIFY(!store.problem().isEmpty());
        QCOMPARE(page.problemLabel()->text(), store.problem());
        QVERIFY(page.problemLabel()->isVisibleTo(&page));
    }

    void mainWindowHasAUsageTab()
    {
        Fixture f;
        f.seed();
        auto settings = SettingsRegistry::openIni(f.dir.filePath(QStringLiteral("KeyRelay.ini")));
        KeyPool pool;
        ProxyService service(&pool);
        MainWindow window(settings.get(), &pool, nullptr, &service, nullptr, f.store.get());
        QVERIFY(window.usagePage());
        window.showPage(MainWindow::UsageTab);
        QCOMPARE(window.tabs()->currentWidget(), window.usagePage());
        QCOMPARE(window.tabs()->tabText(MainWindow::UsageTab), QStringLiteral("&Usage"));

        MainWindow without(settings.get(), &pool, nullptr, &service, nullptr);
        QVERIFY(!without.usagePage());
        QCOMPARE(without.tabs()->count(), 4); // Keys, Log, Settings, Providers
    }

    void chineseTranslation()
    {
        QTranslator translator;
        QVERIFY(translator.load(QLocale(QLocale::Chinese, QLocale::China), QStringLiteral("keyrelay"),
                                QStringLiteral("_"), QStringLiteral(":/keyrelay/i18n")));
        QCOMPARE(translator.translate("keyrelay::MainWindow", "&Usage"), QStringLiteral("用量(&U)"));
        QCOMPARE(translator.translate("keyrelay::UsagePage", "Tokens per day, last %1 days"),
                 QStringLiteral("每日 token 用量（最近 %1 天）"));
        QCOMPARE(translator.translate("keyrelay::UsagePage", "Provider"), QStringLiteral("提供商"));
    }

    /// Not a check: saves the page with a month of data for the documentation.
    void screenshot()
    {
        const QString out = qEnvironmentVariable("KEYRELAY_SCREENSHOT_DIR");
        if (out.isEmpty())
            QSKIP("set KEYRELAY_SCREENSHOT_DIR to save docs/screenshot-usage.png");
        Fixture f(34);
        const QStringList keys { QStringLiteral("Personal"), QStringLiteral("Team shared"),
                                 KeyPool::mask(QStringLiteral("sk-proj-bad0000000000000000000000dead")) };
        const QStringList models { QStringLiteral("gpt-4o-mini"), QStringLiteral("gpt-4o"),
                                   QStringLiteral("text-embedding-3-small") };
        quint32 seed = 7;
        auto next = [&seed](quint32 range) {
            seed = seed * 1103515245u + 12345u;
            return (seed >> 8) % range;
        };
        QList<RequestRecord> todaysRequests;
        for (int daysAgo = 34; daysAgo >= 0; --daysAgo) {
            const QDate day = Today.addDays(-daysAgo);
            const bool weekend = day.dayOfWeek() >= 6;
            const int requests = int(weekend ? 2 + next(4) : 8 + next(14));
            for (int r = 0; r < requests; ++r) {
                const int key = next(10) < 6 ? 0 : (next(10) < 8 ? 1 : 2);
                const int model = next(10) < 6 ? 0 : (next(10) < 7 ? 1 : 2);
                const qint64 prompt = 400 + next(model == 1 ? 9000 : 3000);
                const qint64 completion = model == 2 ? 0 : 100 + next(1500);
                f.recordOn(daysAgo, usage(keys.at(key), models.at(model), prompt, completion));
                if (daysAgo == 0) {
                    RequestRecord record;
                    record.id = quint64(todaysRequests.size() + 1);
                    record.startedAt = QDateTime(Today, QTime(9 + r, 7 * r % 60));
                    record.method = QStringLiteral("POST");
                    record.path = QStringLiteral("/v1/chat/completions");
                    record.model = models.at(model);
                    record.keyLabel = keys.at(key);
                    record.status = 200;
                    record.promptTokens = prompt;
                    record.completionTokens = completion;
                    record.totalTokens = prompt + completion;
                    todaysRequests << record;
                }
            }
        }
        QVERIFY(f.store->flush());
        auto settings = SettingsRegistry::openIni(f.dir.filePath(QStringLiteral("KeyRelay.ini")));
        KeyPool pool;
        ProxyService service(&pool);
        MainWindow window(settings.get(), &pool, nullptr, &service, nullptr, f.store.get());
        window.resize(1100, 760);
        QString error;
        if (!service.start(settings->proxyConfig(), &error)) { // the default port may be taken here
            settings->setValue(Setting::ListenPort, 0);
            QVERIFY2(service.start(settings->proxyConfig(), &error), qPrintable(error));
        }
        // The status line shows the usage store's count of today's requests, as the Usage page does.
        QCOMPARE(window.requestsToday(), quint64(todaysRequests.size()));
        window.showPage(MainWindow::UsageTab);
        window.show();
        QVERIFY(QTest::qWaitForWindowExposed(&window));
        QCoreApplication::sendPostedEvents(); // the chart lays itself out on posted events
        QCoreApplication::processEvents();
        const QString file = QDir(out).filePath(QStringLiteral("screenshot-usage.png"));
        QVERIFY(window.grab().save(file));
        qInfo("saved %s", qPrintable(file));
    }
};

QTEST_MAIN(TestUsagePage)
#include "tst_usagepage.moc"
